//! A cloud-run pool's job template and a run's job variables, merged and checked into a
//! [`CloudRunJobSpec`] before anything is sent to Google (DESIGN §7). Pure: the server calls
//! [`spec_for`] at pool creation and at submit, and answers 422 with the [`FieldError`]s.
//!
//! What Cloud Run lets `jobs.run` override per execution (args, env, timeout) stays out of
//! the job; everything else is the job's content, whose hash names the reused job.

use std::collections::BTreeMap;

use ferry_core::{JobVars, Origin, Variables};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use ferry_core::FieldError;

/// What cloud-run pools take: every variable a template may set; what their runs may set by
/// default (what the container runs and with how much — identity, placement and the endpoint
/// only when the pool's `run_variables` lists them; the endpoint never).
pub const VARIABLES: Variables = Variables {
    pool_type: "cloud-run",
    known: &KNOWN,
    run_default: &[
        "image", "command", "args", "env", "cpu", "memory", "timeout", "labels",
    ],
};

const KNOWN: [&str; 20] = [
    "project",
    "region",
    "image",
    "command",
    "args",
    "env",
    "env_from_secrets",
    "cpu",
    "memory",
    "timeout",
    "max_retries",
    "service_account",
    "vpc_connector",
    "vpc_network",
    "vpc_subnetwork",
    "vpc_network_tags",
    "vpc_egress",
    "labels",
    "endpoint",
    "execution_environment",
];

/// The label keys Ferry sets on every job; a template may not set them.
pub const LABEL_WORKSPACE: &str = "ferry-workspace";
pub const LABEL_POOL: &str = "ferry-pool";
pub const LABEL_MANAGED: &str = "ferry-managed";

/// GCP allows 64 labels per resource; Ferry keeps three.
const MAX_USER_LABELS: usize = 61;

/// What a job gets when neither template nor run sets `cpu` / `memory` (Cloud Run's own
/// defaults).
const DEFAULT_CPU: &str = "1";
const DEFAULT_MEMORY_MIB: u32 = 512;

/// Cloud Run jobs' longest task timeout: 168 hours.
pub const MAX_TIMEOUT_S: u32 = 168 * 3600;

/// A Secret Manager secret version exposed as an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// `projects/P/secrets/S`, or `S` (a secret of the job's own project).
    pub secret: String,
    /// `latest` or a version number.
    pub version: String,
}

/// How the job reaches a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vpc {
    /// A Serverless VPC Access connector (`projects/P/locations/L/connectors/C` or `C`).
    Connector { connector: String, egress: Egress },
    /// Direct VPC egress through a network and/or subnetwork.
    Direct {
        network: Option<String>,
        subnetwork: Option<String>,
        tags: Vec<String>,
        egress: Egress,
    },
}

/// Which outbound traffic goes through the VPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    AllTraffic,
    PrivateRangesOnly,
}

impl Egress {
    fn as_str(self) -> &'static str {
        match self {
            Egress::AllTraffic => "all-traffic",
            Egress::PrivateRangesOnly => "private-ranges-only",
        }
    }
}

/// The execution environment (sandbox generation) of the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionEnvironment {
    Gen1,
    Gen2,
}

/// A checked Cloud Run job: everything [`crate::CloudRunBackend`] needs to create the job and
/// start an execution of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRunJobSpec {
    pub project: String,
    pub region: String,
    pub image: String,
    /// The container's entrypoint (Cloud Run's `command`); empty: the image's.
    pub command: Vec<String>,
    /// Per run: the container's arguments.
    pub args: Vec<String>,
    /// Per run: plain environment variables (never secrets: see `env_from_secrets`).
    pub env: BTreeMap<String, String>,
    /// Environment variable name → Secret Manager secret version.
    pub env_from_secrets: BTreeMap<String, SecretRef>,
    /// Cloud Run's CPU limit: `"1"`, `"2"`, `"4"`, `"6"`, `"8"` or millicores below one (`"500m"`).
    pub cpu: String,
    /// MiB.
    pub memory_mib: u32,
    /// Per run: the task timeout in seconds; `None`: Cloud Run's default (10 minutes), or the
    /// run's own limit.
    pub timeout_s: Option<u32>,
    /// Cloud Run's own retries of a failed task (default 0: Ferry decides about retries).
    pub max_retries: u32,
    pub service_account: Option<String>,
    pub vpc: Option<Vpc>,
    pub execution_environment: Option<ExecutionEnvironment>,
    pub labels: BTreeMap<String, String>,
    pub endpoint: Option<String>,
}

/// Merges `variables` over `template` (each top-level variable replaces the template's) and
/// checks the result. Every problem is reported, not only the first.
pub fn spec_for(template: &Value, variables: &Value) -> Result<CloudRunJobSpec, Vec<FieldError>> {
    let mut c = JobVars::merge(template, variables, &VARIABLES);

    let project = match c.opt_str("project") {
        Some(p) if is_project_id(&p) => p,
        Some(_) => {
            c.err(
                "project",
                "must be a Google Cloud project id: 6 to 30 lowercase letters, digits and \
                 hyphens, starting with a letter (e.g. my-project-123)",
            );
            String::new()
        }
        None => {
            c.err(
                "project",
                "is required: the Google Cloud project id to run in",
            );
            String::new()
        }
    };
    let region = match c.opt_str("region") {
        Some(r) if is_region(&r) => r,
        Some(_) => {
            c.err("region", "must be a Cloud Run region, e.g. us-central1");
            String::new()
        }
        None => {
            c.err(
                "region",
                "is required: a Cloud Run region, e.g. us-central1",
            );
            String::new()
        }
    };
    let image = match c.opt_str("image") {
        Some(i) if !i.is_empty() && !i.chars().any(char::is_whitespace) && i.len() <= 1024 => i,
        Some(_) => {
            c.err(
                "image",
                "must be an image reference without spaces, e.g. us-docker.pkg.dev/my-project/flows/runner:1",
            );
            String::new()
        }
        None => {
            c.err("image", "is required");
            String::new()
        }
    };
    let command = c
        .opt_str_list("command", r#"["python", "-m", "flow"]"#)
        .unwrap_or_default();
    let args = c
        .opt_str_list("args", r#"["--stage", "test"]"#)
        .unwrap_or_default();
    let env = c.opt_str_map("env").unwrap_or_default();
    for k in env.keys() {
        c.check_env_name("env", k);
    }
    let env_from_secrets = c.secrets(&env);
    let cpu = c.cpu();
    let memory_mib = c.memory();
    // The pairing holds for what the job gets, defaults included (1 CPU, 512 MiB): `cpu: 8`
    // alone needs more memory, `memory: 32Gi` alone more CPUs. A value already refused is not
    // paired again.
    let unset = |c: &JobVars, field: &str| c.get(field).is_none_or(Value::is_null);
    let paired_cpu = match &cpu {
        Some(set) => Some(set.clone()),
        None if unset(&c, "cpu") => Some((DEFAULT_CPU.to_owned(), 1000)),
        None => None,
    };
    let paired_memory = match memory_mib {
        Some(mib) => Some(mib),
        None if unset(&c, "memory") => Some(DEFAULT_MEMORY_MIB),
        None => None,
    };
    if let (Some((cpu, millis)), Some(mib)) = (paired_cpu, paired_memory) {
        c.check_cpu_memory(&cpu, millis, mib);
    }
    let timeout_s = c.timeout();
    let max_retries = match c.get("max_retries").cloned() {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64().filter(|n| *n <= 10) {
            Some(n) => u32::try_from(n).unwrap_or(0),
            None => {
                c.err("max_retries", "must be a whole number from 0 to 10");
                0
            }
        },
    };
    let service_account = c.opt_str("service_account");
    if let Some(sa) = &service_account {
        if !is_service_account(sa) {
            c.err(
                "service_account",
                "must be a service account's email, e.g. flows@my-project.iam.gserviceaccount.com",
            );
        }
    }
    let vpc = c.vpc();
    let execution_environment = match c.opt_str("execution_environment").as_deref() {
        None => None,
        Some("gen1") => Some(ExecutionEnvironment::Gen1),
        Some("gen2") => Some(ExecutionEnvironment::Gen2),
        Some(_) => {
            c.err("execution_environment", "must be \"gen1\" or \"gen2\"");
            None
        }
    };
    let labels = c.labels();
    let endpoint = c.opt_str("endpoint");
    if let Some(e) = &endpoint {
        // Only its form here; whether the operator allows it is checked where the operator's
        // list is known (the server, and the backend before any call).
        if let Err(e) = Origin::parse(e) {
            c.err("endpoint", e.to_string());
        }
    }

    c.finish(CloudRunJobSpec {
        project,
        region,
        image,
        command,
        args,
        env,
        env_from_secrets,
        cpu: cpu.map_or_else(|| DEFAULT_CPU.to_owned(), |(s, _)| s),
        memory_mib: memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        timeout_s,
        max_retries,
        service_account,
        vpc,
        execution_environment,
        labels,
        endpoint,
    })
}

impl CloudRunJobSpec {
    /// `projects/P/locations/R`.
    pub fn location(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }

    /// Cloud Run's memory limit: `512Mi`.
    pub fn memory(&self) -> String {
        format!("{}Mi", self.memory_mib)
    }

    /// What cannot be overridden per run: the job's content. Its hash names the job.
    pub fn job_content(&self) -> Value {
        let secrets: BTreeMap<&String, Value> = self
            .env_from_secrets
            .iter()
            .map(|(k, s)| (k, json!([s.secret, s.version])))
            .collect();
        let vpc = self.vpc.as_ref().map(|v| match v {
            Vpc::Connector { connector, egress } => {
                json!({"connector": connector, "egress": egress.as_str()})
            }
            Vpc::Direct {
                network,
                subnetwork,
                tags,
                egress,
            } => json!({"network": network, "subnetwork": subnetwork, "tags": tags,
                        "egress": egress.as_str()}),
        });
        json!({
            "v": 1,
            "image": self.image,
            "command": self.command,
            "cpu": self.cpu,
            "memory": self.memory(),
            "env_from_secrets": secrets,
            "max_retries": self.max_retries,
            "service_account": self.service_account,
            "vpc": vpc,
            "execution_environment": self.execution_environment.map(|e| format!("{e:?}")),
            "labels": self.labels,
        })
    }

    /// The job's id for pool `pool` (of workspace `workspace`): `ferry-<pool name>-<hash>`, the
    /// hash covering the workspace, the pool's id and [`Self::job_content`], so no two pools
    /// ever share a job. At most 63 characters, as Cloud Run requires.
    pub fn job_id(&self, workspace: &str, pool_id: &str, pool_name: &str) -> String {
        let mut h = Sha256::new();
        h.update(workspace.as_bytes());
        h.update([0]);
        h.update(pool_id.as_bytes());
        h.update([0]);
        h.update(self.job_content().to_string().as_bytes());
        let hash = hex::encode(h.finalize());
        let slug: String = pool_name
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .take(24)
            .collect();
        let slug = slug.trim_matches('-');
        if slug.is_empty() {
            format!("ferry-{}", &hash[..20])
        } else {
            format!("ferry-{slug}-{}", &hash[..20])
        }
    }
}

fn is_project_id(p: &str) -> bool {
    let b = p.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !p.ends_with('-')
}

fn is_region(r: &str) -> bool {
    // e.g. us-central1, europe-west1, northamerica-northeast2, me-central2.
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() == 2
        && parts[0].len() >= 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1].len() >= 2
        && parts[1]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && parts[1].bytes().last().is_some_and(|b| b.is_ascii_digit())
        && parts[1]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && r.len() <= 30
}

fn is_service_account(s: &str) -> bool {
    let Some((name, domain)) = s.split_once('@') else {
        return false;
    };
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && domain.ends_with("gserviceaccount.com")
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// `https://...`, or `http://` on a loopback address (tests, local emulators).
fn is_label_part(s: &str, key: bool) -> bool {
    let b = s.as_bytes();
    b.len() <= 63
        && (!key || b.first().is_some_and(u8::is_ascii_lowercase))
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// A Secret Manager secret id: 1 to 255 of `[A-Za-z0-9_-]`.
fn is_secret_id(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_version(v: &str) -> bool {
    v == "latest" || (!v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses `projects/P/secrets/S/versions/V`, `projects/P/secrets/S` (latest) or
/// `{"secret": "S" or "projects/P/secrets/S", "version": "V"}`.
fn parse_secret_ref(v: &Value) -> Option<SecretRef> {
    let (secret, version) = match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split('/').collect();
            match parts.as_slice() {
                ["projects", p, "secrets", s, "versions", v] => {
                    (format!("projects/{p}/secrets/{s}"), (*v).to_owned())
                }
                ["projects", p, "secrets", s] => {
                    (format!("projects/{p}/secrets/{s}"), "latest".to_owned())
                }
                _ => return None,
            }
        }
        Value::Object(o) => {
            if o.keys().any(|k| k != "secret" && k != "version") {
                return None;
            }
            let secret = o.get("secret")?.as_str()?.to_owned();
            let version = match o.get("version") {
                None => "latest".to_owned(),
                Some(Value::String(v)) => v.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return None,
            };
            (secret, version)
        }
        _ => return None,
    };
    let secret_ok = match secret.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "secrets", s] => {
            (is_project_id(p) || p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty())
                && is_secret_id(s)
        }
        [s] => is_secret_id(s),
        _ => false,
    };
    (secret_ok && is_version(&version)).then_some(SecretRef { secret, version })
}

/// The Cloud Run-specific checks, on top of [`JobVars`]' typed reads.
trait CloudRunChecks {
    fn check_env_name(&mut self, field: &str, k: &str);
    fn secrets(&mut self, env: &BTreeMap<String, String>) -> BTreeMap<String, SecretRef>;
    fn cpu(&mut self) -> Option<(String, u32)>;
    fn memory(&mut self) -> Option<u32>;
    fn check_cpu_memory(&mut self, cpu: &str, millis: u32, mib: u32);
    fn timeout(&mut self) -> Option<u32>;
    fn vpc(&mut self) -> Option<Vpc>;
    fn labels(&mut self) -> BTreeMap<String, String>;
}

impl CloudRunChecks for JobVars {
    fn check_env_name(&mut self, field: &str, k: &str) {
        if k.starts_with("FERRY_") {
            self.err(field, format!("{k}: FERRY_ variables are set by Ferry"));
        } else if k.is_empty()
            || k.len() > 255
            || k.contains('=')
            || k.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(field, format!("{k:?} is not a valid variable name"));
        }
    }

    fn secrets(&mut self, env: &BTreeMap<String, String>) -> BTreeMap<String, SecretRef> {
        const FIELD: &str = "env_from_secrets";
        let mut out = BTreeMap::new();
        let obj = match self.get(FIELD).cloned() {
            None | Some(Value::Null) => return out,
            Some(Value::Object(obj)) => obj.clone(),
            Some(_) => {
                self.err(
                    FIELD,
                    "must be an object: variable name → Secret Manager secret version",
                );
                return out;
            }
        };
        for (k, v) in &obj {
            self.check_env_name(FIELD, k);
            if env.contains_key(k) {
                self.err(FIELD, format!("{k}: also set in env; pick one"));
            }
            match parse_secret_ref(v) {
                Some(r) => {
                    out.insert(k.clone(), r);
                }
                None => self.err(
                    FIELD,
                    format!(
                        "{k}: must reference a Secret Manager secret version, \
                         \"projects/<project>/secrets/<secret>/versions/<version or latest>\" \
                         or {{\"secret\": \"<secret>\", \"version\": \"latest\"}}, never the \
                         secret's value"
                    ),
                ),
            }
        }
        out
    }

    /// The CPU limit as Cloud Run writes it, and in millicores.
    fn cpu(&mut self) -> Option<(String, u32)> {
        const MSG: &str = "must be 1, 2, 4, 6 or 8 CPUs, or a fraction of one from 0.08 \
                           (e.g. \"0.5\" or \"500m\")";
        let text = match self.get("cpu").cloned() {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(_) => {
                self.err("cpu", MSG);
                return None;
            }
        };
        let millis = match text.strip_suffix('m') {
            Some(m) => m.parse::<u32>().ok(),
            None => parse_decimal_millis(&text),
        };
        let ok =
            millis.filter(|m| (80..1000).contains(m) || [1000, 2000, 4000, 6000, 8000].contains(m));
        match ok {
            Some(m) if m >= 1000 => Some(((m / 1000).to_string(), m)),
            Some(m) => Some((format!("{m}m"), m)),
            None => {
                self.err("cpu", MSG);
                None
            }
        }
    }

    /// MiB, from `512Mi`, `2Gi`, `1G`, `512M`, or a number of MiB.
    fn memory(&mut self) -> Option<u32> {
        const MSG: &str = "must be a size from 512Mi to 32Gi, e.g. \"512Mi\" or \"2Gi\"";
        let mib: Option<u64> = match self.get("memory").cloned() {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => {
                let s = s.trim();
                let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (num, unit) = s.split_at(split);
                let n = num.parse::<u64>().ok();
                // Checked: a product past u64 is out of range, never wrapped into it.
                match unit {
                    "Mi" | "" => n,
                    "Gi" => n.and_then(|n| n.checked_mul(1024)),
                    // Decimal units: 1M = 10^6 bytes.
                    "M" => n
                        .and_then(|n| n.checked_mul(1_000_000))
                        .map(|b| b / 1_048_576),
                    "G" => n
                        .and_then(|n| n.checked_mul(1_000_000_000))
                        .map(|b| b / 1_048_576),
                    _ => None,
                }
            }
            Some(_) => None,
        };
        match mib.filter(|m| (512..=32 * 1024).contains(m)) {
            Some(m) => u32::try_from(m).ok(),
            None => {
                self.err("memory", MSG);
                None
            }
        }
    }

    /// Cloud Run's CPU and memory pairings.
    fn check_cpu_memory(&mut self, cpu: &str, millis: u32, mib: u32) {
        let gib = 1024;
        let (min, max) = match millis {
            m if m < 500 => (0, 512),
            m if m < 1000 => (0, gib),
            1000 => (0, 4 * gib),
            2000 => (0, 8 * gib),
            4000 => (2 * gib, 16 * gib),
            6000 => (4 * gib, 24 * gib),
            _ => (4 * gib, 32 * gib),
        };
        if mib < min || mib > max {
            self.err(
                "memory",
                format!(
                    "{mib}Mi does not go with cpu {cpu}: Cloud Run allows {}Mi to {}Mi with it",
                    min.max(512),
                    max
                ),
            );
        }
    }

    fn timeout(&mut self) -> Option<u32> {
        let msg = format!(
            "must be a duration from 1s to {}h: seconds, or a string like \"600s\", \"30m\" or \"2h\"",
            MAX_TIMEOUT_S / 3600
        );
        let secs: Option<u64> = match self.get("timeout").cloned() {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => {
                let s = s.trim();
                let (num, mult) = match s.chars().last() {
                    Some('s') => (&s[..s.len() - 1], 1),
                    Some('m') => (&s[..s.len() - 1], 60),
                    Some('h') => (&s[..s.len() - 1], 3600),
                    _ => (s, 1),
                };
                num.parse::<u64>().ok().map(|n| n.saturating_mul(mult))
            }
            Some(_) => None,
        };
        match secs.filter(|s| (1..=u64::from(MAX_TIMEOUT_S)).contains(s)) {
            Some(s) => u32::try_from(s).ok(),
            None => {
                self.err("timeout", msg);
                None
            }
        }
    }

    fn vpc(&mut self) -> Option<Vpc> {
        let connector = self.opt_str("vpc_connector");
        let network = self.opt_str("vpc_network");
        let subnetwork = self.opt_str("vpc_subnetwork");
        let tags = self
            .opt_str_list("vpc_network_tags", r#"["flows"]"#)
            .unwrap_or_default();
        let egress = match self.opt_str("vpc_egress").as_deref() {
            None | Some("private-ranges-only") => Egress::PrivateRangesOnly,
            Some("all-traffic") => Egress::AllTraffic,
            Some(_) => {
                self.err(
                    "vpc_egress",
                    "must be \"private-ranges-only\" (the default) or \"all-traffic\"",
                );
                Egress::PrivateRangesOnly
            }
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
                && !s.starts_with('/')
                && !s.contains("//")
        };
        if let Some(c) = &connector {
            let ok = match c.split('/').collect::<Vec<_>>().as_slice() {
                ["projects", p, "locations", l, "connectors", n] => {
                    !p.is_empty() && is_region(l) && name_ok(n)
                }
                [n] => name_ok(n),
                _ => false,
            };
            if !ok {
                self.err(
                    "vpc_connector",
                    "must be a connector's name or projects/<p>/locations/<region>/connectors/<name>",
                );
            }
            if network.is_some() || subnetwork.is_some() || !tags.is_empty() {
                self.err(
                    "vpc_connector",
                    "use a VPC connector or direct VPC egress (vpc_network, vpc_subnetwork, \
                     vpc_network_tags), not both",
                );
            }
            return Some(Vpc::Connector {
                connector: c.clone(),
                egress,
            });
        }
        for (field, v) in [("vpc_network", &network), ("vpc_subnetwork", &subnetwork)] {
            if v.as_deref().is_some_and(|v| !name_ok(v)) {
                self.err(
                    field,
                    "must be a name or a projects/<p>/.../<name> path of lowercase letters, digits and hyphens",
                );
            }
        }
        for t in &tags {
            if !is_label_part(t, true) || t.contains('_') || t.is_empty() {
                self.err(
                    "vpc_network_tags",
                    format!(
                        "{t:?} is not a network tag (lowercase letters, digits, hyphens; 1 to 63)"
                    ),
                );
            }
        }
        if network.is_none() && subnetwork.is_none() {
            if !tags.is_empty() {
                self.err(
                    "vpc_network_tags",
                    "need vpc_network or vpc_subnetwork (direct VPC egress)",
                );
            }
            if self
                .get("vpc_egress")
                .cloned()
                .is_some_and(|v| !v.is_null())
            {
                self.err(
                    "vpc_egress",
                    "needs vpc_connector, vpc_network or vpc_subnetwork",
                );
            }
            return None;
        }
        Some(Vpc::Direct {
            network,
            subnetwork,
            tags,
            egress,
        })
    }

    fn labels(&mut self) -> BTreeMap<String, String> {
        let labels = self.opt_str_map("labels").unwrap_or_default();
        if labels.len() > MAX_USER_LABELS {
            self.err(
                "labels",
                format!("at most {MAX_USER_LABELS} labels (Ferry adds its own three)"),
            );
        }
        for (k, v) in &labels {
            if k.starts_with("ferry") {
                self.err("labels", format!("{k}: ferry labels are set by Ferry"));
            } else if k.is_empty() || !is_label_part(k, true) {
                self.err(
                    "labels",
                    format!(
                        "key {k:?}: 1 to 63 lowercase letters, digits, '_' or '-', starting with a letter"
                    ),
                );
            }
            if !is_label_part(v, false) {
                self.err(
                    "labels",
                    format!("{k}: value {v:?}: at most 63 lowercase letters, digits, '_' or '-'"),
                );
            }
        }
        labels
    }
}

/// `"0.5"` → 500, `"2"` → 2000; at most three decimals.
fn parse_decimal_millis(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 3 {
        return None;
    }
    let int: u32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_m = 0u32;
    for (i, c) in frac.chars().enumerate() {
        let d = c.to_digit(10)?;
        frac_m += d * 10u32.pow(2 - u32::try_from(i).ok()?);
    }
    int.checked_mul(1000)?.checked_add(frac_m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template letting runs set every variable they ever may, so the cases below check
    /// the values.
    fn base() -> Value {
        json!({
            "project": "acme-flows",
            "region": "europe-west1",
            "image": "europe-docker.pkg.dev/acme-flows/flows/runner:1",
            "run_variables": runs_may_set(),
        })
    }

    fn runs_may_set() -> Vec<&'static str> {
        KNOWN.into_iter().filter(|k| *k != "endpoint").collect()
    }

    #[test]
    fn a_template_endpoint_must_be_an_origin() {
        for (endpoint, ok) in [
            ("https://europe-west1-run.googleapis.com", true),
            ("http://127.0.0.1:8085", true),
            ("https://run.googleapis.com/v2", false),
            ("https://user@run.googleapis.com", false),
            ("ftp://x", false),
        ] {
            let mut t = base();
            t["endpoint"] = json!(endpoint);
            let errors = spec_for(&t, &Value::Null).err().unwrap_or_default();
            assert_eq!(errors.is_empty(), ok, "{endpoint}: {errors:?}");
        }
    }

    #[test]
    fn by_default_runs_set_what_runs_and_with_how_much_only() {
        let t = json!({"project": "acme-flows", "region": "europe-west1", "image": "x:1"});
        // Positive control.
        assert!(spec_for(&t, &json!({"image": "y:2", "command": ["a"], "args": ["b"], "env": {"A": "1"}, "cpu": "2", "memory": "1Gi", "timeout": 60, "labels": {"a": "b"}})).is_ok());
        for refused in [
            json!({"service_account": "other@acme-flows.iam.gserviceaccount.com"}),
            json!({"project": "other-project"}),
            json!({"region": "us-central1"}),
            json!({"vpc_connector": "c"}),
            json!({"endpoint": "https://run.googleapis.com"}),
            json!({"run_variables": ["project"]}),
        ] {
            let errors = spec_for(&t, &refused).err().unwrap_or_default();
            assert_eq!(errors.len(), 1, "{refused}: {errors:?}");
        }
    }

    fn fields(vars: Value) -> Vec<String> {
        match spec_for(&base(), &vars) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    fn spec(vars: Value) -> CloudRunJobSpec {
        spec_for(&base(), &vars).unwrap_or_else(|e| panic!("{vars}: {e:?}"))
    }

    #[test]
    fn defaults() {
        let s = spec(Value::Null);
        assert_eq!((s.cpu.as_str(), s.memory().as_str()), ("1", "512Mi"));
        assert_eq!(s.max_retries, 0);
        assert_eq!(s.timeout_s, None);
        assert_eq!(s.location(), "projects/acme-flows/locations/europe-west1");
        assert!(s.vpc.is_none() && s.labels.is_empty() && s.endpoint.is_none());
    }

    #[test]
    fn formats_are_normalised() {
        assert_eq!(spec(json!({"cpu": 2, "memory": "2Gi"})).cpu, "2");
        assert_eq!(spec(json!({"cpu": "0.5"})).cpu, "500m");
        assert_eq!(spec(json!({"cpu": "250m"})).cpu, "250m");
        assert_eq!(spec(json!({"cpu": "4000m", "memory": "4Gi"})).cpu, "4");
        assert_eq!(spec(json!({"memory": "1Gi"})).memory_mib, 1024);
        assert_eq!(spec(json!({"memory": 768})).memory_mib, 768);
        assert_eq!(spec(json!({"memory": "1000M"})).memory_mib, 953);
        assert_eq!(spec(json!({"timeout": "30m"})).timeout_s, Some(1800));
        assert_eq!(spec(json!({"timeout": 90})).timeout_s, Some(90));
        assert_eq!(spec(json!({"timeout": "600s"})).timeout_s, Some(600));
        let s = spec(json!({"env_from_secrets": {
            "DB": "projects/acme-flows/secrets/db-password/versions/3",
            "API": "projects/123456789/secrets/api",
            "TOKEN": {"secret": "token", "version": 2},
        }}));
        assert_eq!(
            s.env_from_secrets["DB"],
            SecretRef {
                secret: "projects/acme-flows/secrets/db-password".into(),
                version: "3".into()
            }
        );
        assert_eq!(s.env_from_secrets["API"].version, "latest");
        assert_eq!(s.env_from_secrets["TOKEN"].secret, "token");
        assert_eq!(s.env_from_secrets["TOKEN"].version, "2");
    }

    #[test]
    fn variables_are_checked() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (json!({"project": "ab"}), vec!["project"]),
            (json!({"project": "Acme-Flows"}), vec!["project"]),
            (json!({"project": "1acme-flows"}), vec!["project"]),
            (json!({"project": null}), vec!["project"]),
            (json!({"region": "us-central1"}), vec![]),
            (json!({"region": "northamerica-northeast2"}), vec![]),
            (json!({"region": "US Central"}), vec!["region"]),
            (json!({"region": "us-central"}), vec!["region"]),
            (json!({"image": ""}), vec!["image"]),
            (json!({"image": "a b"}), vec!["image"]),
            (json!({"image": null}), vec!["image"]),
            (json!({"command": ["python", "-m", "flow"]}), vec![]),
            (json!({"command": "python -m flow"}), vec!["command"]),
            (json!({"args": ["--n", "3"]}), vec![]),
            (json!({"args": [1]}), vec!["args"]),
            (json!({"env": {"A": "1"}}), vec![]),
            (json!({"env": {"A": 1}}), vec!["env"]),
            (json!({"env": {"FERRY_RUN_ID": "x"}}), vec!["env"]),
            (json!({"env": {"A=B": "x"}}), vec!["env"]),
            (
                json!({"env_from_secrets": {"DB": "hunter2"}}),
                vec!["env_from_secrets"],
            ),
            (
                json!({"env_from_secrets": {"DB": "projects/acme-flows/secrets/db/versions/first"}}),
                vec!["env_from_secrets"],
            ),
            (
                json!({"env_from_secrets": {"DB": "projects/acme-flows/secrets/db"}, "env": {"DB": "x"}}),
                vec!["env_from_secrets"],
            ),
            (
                json!({"env_from_secrets": {"FERRY_RUN_TOKEN": "projects/acme-flows/secrets/db"}}),
                vec!["env_from_secrets"],
            ),
            (
                json!({"env_from_secrets": {"DB": {"secret": "db", "value": "x"}}}),
                vec!["env_from_secrets"],
            ),
            (json!({"env_from_secrets": ["x"]}), vec!["env_from_secrets"]),
            (json!({"cpu": 3}), vec!["cpu"]),
            (json!({"cpu": "0.01"}), vec!["cpu"]),
            (json!({"cpu": "lots"}), vec!["cpu"]),
            (json!({"cpu": 8, "memory": "32Gi"}), vec![]),
            (json!({"cpu": 1, "memory": "8Gi"}), vec!["memory"]),
            (json!({"cpu": 8, "memory": "1Gi"}), vec!["memory"]),
            (json!({"cpu": "0.25", "memory": "1Gi"}), vec!["memory"]),
            // Paired with the defaults too (found by the cloud_run_spec fuzz target): 32Gi
            // needs more than the default 1 CPU, 8 CPUs more than the default 512Mi.
            (json!({"memory": "32Gi"}), vec!["memory"]),
            (json!({"cpu": 8}), vec!["memory"]),
            (json!({"memory": "4Gi"}), vec![]),
            (json!({"cpu": "0.5"}), vec![]),
            (json!({"cpu": 3, "memory": "32Gi"}), vec!["cpu"]),
            (json!({"cpu": 8, "memory": "lots"}), vec!["memory"]),
            (json!({"memory": "256Mi"}), vec!["memory"]),
            (json!({"memory": "64Gi"}), vec!["memory"]),
            (json!({"memory": "1Ti"}), vec!["memory"]),
            // Sizes whose MiB overflow u64: refused, not wrapped around into range (found
            // by the cloud_run_spec fuzz target; 2^54 + 1 Gi wrapped to 1 Gi).
            (json!({"memory": "18014398509481985Gi"}), vec!["memory"]),
            (json!({"memory": "003252846309054582328Gi"}), vec!["memory"]),
            (json!({"memory": "18446744073710M"}), vec!["memory"]),
            (json!({"memory": "18446744074G"}), vec!["memory"]),
            (json!({"timeout": 0}), vec!["timeout"]),
            (json!({"timeout": "169h"}), vec!["timeout"]),
            (json!({"timeout": "soon"}), vec!["timeout"]),
            (json!({"max_retries": 3}), vec![]),
            (json!({"max_retries": 11}), vec!["max_retries"]),
            (json!({"max_retries": -1}), vec!["max_retries"]),
            (
                json!({"service_account": "flows@acme-flows.iam.gserviceaccount.com"}),
                vec![],
            ),
            (
                json!({"service_account": "bob@example.com"}),
                vec!["service_account"],
            ),
            (json!({"vpc_connector": "flows-connector"}), vec![]),
            (
                json!({"vpc_connector": "projects/acme-flows/locations/europe-west1/connectors/c1", "vpc_egress": "all-traffic"}),
                vec![],
            ),
            (
                json!({"vpc_connector": "Bad Connector"}),
                vec!["vpc_connector"],
            ),
            (
                json!({"vpc_connector": "c1", "vpc_network": "default"}),
                vec!["vpc_connector"],
            ),
            (
                json!({"vpc_network": "default", "vpc_subnetwork": "flows", "vpc_network_tags": ["ferry-runs"]}),
                vec![],
            ),
            (json!({"vpc_network_tags": ["x"]}), vec!["vpc_network_tags"]),
            (json!({"vpc_egress": "all-traffic"}), vec!["vpc_egress"]),
            (
                json!({"vpc_network": "default", "vpc_egress": "everything"}),
                vec!["vpc_egress"],
            ),
            (
                json!({"labels": {"team": "data", "cost_center": "42"}}),
                vec![],
            ),
            (json!({"labels": {"Team": "data"}}), vec!["labels"]),
            (json!({"labels": {"team": "Data Eng"}}), vec!["labels"]),
            (json!({"labels": {"ferry-pool": "x"}}), vec!["labels"]),
            (
                json!({"labels": {"run.googleapis.com/x": "y"}}),
                vec!["labels"],
            ),
            (json!({"labels": {"a": 1}}), vec!["labels"]),
            (
                json!({"endpoint": "http://127.0.0.1:8085"}),
                vec!["endpoint"],
            ),
            (json!({"execution_environment": "gen2"}), vec![]),
            (
                json!({"execution_environment": "gen3"}),
                vec!["execution_environment"],
            ),
            (json!({"image_uri": "x"}), vec!["image_uri"]),
            (json!(["not", "an", "object"]), vec!["job_variables"]),
        ];
        for (vars, want) in cases {
            let got = fields(vars.clone());
            let want: Vec<String> = want.into_iter().map(str::to_owned).collect();
            assert_eq!(got, want, "variables {vars}");
        }
    }

    #[test]
    fn messages_say_what_to_fix() {
        let errors = spec_for(&json!({}), &json!({"cpu": 3, "labels": {"Team": "x"}}))
            .err()
            .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["project", "region", "image", "cpu", "labels"]);
        assert!(errors[0].message.contains("required"), "{errors:?}");
        assert!(errors[3].message.contains("1, 2, 4, 6 or 8"), "{errors:?}");
        let e = spec_for(&base(), &json!({"env_from_secrets": {"DB": "hunter2"}}))
            .err()
            .unwrap_or_default();
        assert!(e[0].message.contains("never the secret's value"), "{e:?}");
        assert!(!e[0].message.contains("hunter2"), "{e:?}");
    }

    #[test]
    fn unknown_template_keys_are_refused_too() {
        let mut t = base();
        t["privileged"] = json!(true);
        let errors = spec_for(&t, &json!({})).err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "privileged");
        assert!(errors[0].message.contains("job_template"), "{errors:?}");
    }

    #[test]
    fn job_id_covers_only_what_runs_cannot_override() {
        let id = |vars: Value| spec(vars).job_id("ws-1", "pool-1", "nightly-etl");
        let j = id(json!({}));
        assert!(j.starts_with("ferry-nightly-etl-") && j.len() <= 63, "{j}");
        // Per-run values: the same job.
        for vars in [
            json!({"args": ["x"]}),
            json!({"env": {"A": "1"}}),
            json!({"timeout": 60}),
        ] {
            assert_eq!(id(vars.clone()), j, "{vars}");
        }
        // The job's content: another job.
        for vars in [
            json!({"image": "other:1"}),
            json!({"command": ["python"]}),
            json!({"cpu": 2, "memory": "1Gi"}),
            json!({"service_account": "flows@acme-flows.iam.gserviceaccount.com"}),
            json!({"env_from_secrets": {"DB": "projects/acme-flows/secrets/db"}}),
            json!({"labels": {"team": "data"}}),
            json!({"max_retries": 1}),
        ] {
            assert_ne!(id(vars.clone()), j, "{vars}");
        }
        // Another pool or workspace: another job.
        let s = spec(json!({}));
        assert_ne!(s.job_id("ws-2", "pool-1", "nightly-etl"), j);
        assert_ne!(s.job_id("ws-1", "pool-2", "nightly-etl"), j);
        let long = s.job_id("ws-1", "pool-1", &"a".repeat(63));
        assert!(long.len() <= 63, "{long}");
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal_millis("0.5"), Some(500));
        assert_eq!(parse_decimal_millis(".08"), Some(80));
        assert_eq!(parse_decimal_millis("2"), Some(2000));
        assert_eq!(parse_decimal_millis("0.0001"), None);
        assert_eq!(parse_decimal_millis("x"), None);
        assert_eq!(parse_decimal_millis("."), None);
    }
}
