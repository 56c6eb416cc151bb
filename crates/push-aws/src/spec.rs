//! An ecs pool's job template and a run's job variables, merged and checked into an
//! [`EcsJobSpec`] before anything is sent to AWS (DESIGN §7). Pure: the server calls
//! [`spec_for`] at pool creation and at submit, and answers 422 with the [`FieldError`]s.

use std::collections::BTreeMap;

use ferry_core::{JobVars, Origin, Variables};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use ferry_core::FieldError;

/// How the task gets its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    /// `FARGATE`, `EC2` or `EXTERNAL`.
    LaunchType(String),
    /// Capacity providers (e.g. `FARGATE_SPOT`), in order.
    Strategy(Vec<CapacityProvider>),
}

/// One item of a capacity provider strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityProvider {
    pub capacity_provider: String,
    pub weight: u32,
    pub base: u32,
}

impl Capacity {
    /// Whether the task runs on Fargate (which fixes the cpu/memory pairs).
    pub fn is_fargate(&self) -> bool {
        match self {
            Capacity::LaunchType(t) => t == "FARGATE",
            Capacity::Strategy(items) => items
                .iter()
                .all(|i| i.capacity_provider.starts_with("FARGATE")),
        }
    }
}

/// A checked ECS job: everything [`crate::EcsBackend`] needs to register the task definition
/// and run the task. The network mode is always `awsvpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsJobSpec {
    /// `None`: the credential's region.
    pub region: Option<String>,
    pub cluster: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Environment variable name → Secrets Manager or SSM parameter ARN.
    pub secrets: BTreeMap<String, String>,
    /// CPU units (1024 = 1 vCPU).
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    pub capacity: Capacity,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub log_group: Option<String>,
    pub endpoint: Option<String>,
}

/// What ecs pools take: every variable a template may set; what their runs may set by
/// default (what the container runs and with how much — identity, placement and the endpoint
/// only when the pool's `run_variables` lists them; the endpoint never).
pub const VARIABLES: Variables = Variables {
    pool_type: "ecs",
    known: &KNOWN,
    run_default: &["image", "command", "env", "cpu", "memory", "tags"],
};

const KNOWN: [&str; 18] = [
    "region",
    "cluster",
    "image",
    "command",
    "env",
    "secrets",
    "cpu",
    "memory",
    "launch_type",
    "capacity_provider_strategy",
    "subnets",
    "security_groups",
    "assign_public_ip",
    "task_role_arn",
    "execution_role_arn",
    "tags",
    "log_group",
    "endpoint",
];

/// Fargate's valid task sizes: cpu units → the memory (MiB) each allows.
fn fargate_memory_ok(cpu: u32, memory: u32) -> bool {
    let gib = 1024;
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (gib..=4 * gib).contains(&memory) && memory % gib == 0,
        1024 => (2 * gib..=8 * gib).contains(&memory) && memory % gib == 0,
        2048 => (4 * gib..=16 * gib).contains(&memory) && memory % gib == 0,
        4096 => (8 * gib..=30 * gib).contains(&memory) && memory % gib == 0,
        8192 => (16 * gib..=60 * gib).contains(&memory) && memory % (4 * gib) == 0,
        16384 => (32 * gib..=120 * gib).contains(&memory) && memory % (8 * gib) == 0,
        _ => false,
    }
}

/// Merges `variables` over `template` (each top-level variable replaces the template's) and
/// checks the result. Every problem is reported, not only the first.
pub fn spec_for(template: &Value, variables: &Value) -> Result<EcsJobSpec, Vec<FieldError>> {
    let mut c = JobVars::merge(template, variables, &VARIABLES);

    let region = c.opt_str("region").filter(|r| c.check_region(r));
    let cluster = c.opt_str("cluster").unwrap_or_else(|| "default".to_owned());
    c.check_cluster(&cluster);
    let image = match c.opt_str("image") {
        Some(i) if !i.is_empty() && !i.chars().any(char::is_whitespace) && i.len() <= 1024 => i,
        Some(_) => {
            c.err("image", "must be an image reference without spaces, e.g. public.ecr.aws/docker/library/python:3.12");
            String::new()
        }
        None => {
            c.errors.push(FieldError::missing("image"));
            String::new()
        }
    };
    let command = c
        .opt_str_list("command", r#"["python", "flow.py"]"#)
        .unwrap_or_default();
    let env = c.opt_str_map("env").unwrap_or_default();
    for k in env.keys() {
        if k.starts_with("FERRY_") {
            c.err("env", format!("{k}: FERRY_ variables are set by Ferry"));
        } else if k.is_empty() || k.contains('=') {
            c.err("env", format!("{k:?} is not a valid variable name"));
        }
    }
    let secrets = c.opt_str_map("secrets").unwrap_or_default();
    for (k, arn) in &secrets {
        if k.starts_with("FERRY_") || env.contains_key(k) {
            c.err(
                "secrets",
                format!("{k}: already set by Ferry or by env; pick another name"),
            );
        }
        if !is_secret_arn(arn) {
            c.err(
                "secrets",
                format!(
                    "{k}: must be the ARN of a Secrets Manager secret or SSM parameter \
                     (arn:aws:secretsmanager:... or arn:aws:ssm:...), never the value"
                ),
            );
        }
    }
    let cpu = c.opt_u32("cpu", "cpu units").unwrap_or(256);
    let memory = c.opt_u32("memory", "MiB").unwrap_or(512);

    let capacity = match (
        c.get("launch_type").cloned(),
        c.get("capacity_provider_strategy").cloned(),
    ) {
        (Some(_), Some(_)) => {
            c.err(
                "capacity_provider_strategy",
                "set launch_type or capacity_provider_strategy, not both",
            );
            Capacity::LaunchType("FARGATE".to_owned())
        }
        (_, Some(s)) => Capacity::Strategy(c.strategy(&s)),
        (Some(_), None) => {
            let t = c.opt_str("launch_type").unwrap_or_default();
            if !["FARGATE", "EC2", "EXTERNAL"].contains(&t.as_str()) {
                c.err("launch_type", "must be FARGATE, EC2 or EXTERNAL");
            }
            Capacity::LaunchType(t)
        }
        (None, None) => Capacity::LaunchType("FARGATE".to_owned()),
    };
    if capacity.is_fargate() && !fargate_memory_ok(cpu, memory) {
        c.err(
            "memory",
            format!(
                "cpu {cpu} with memory {memory} is not a Fargate size; e.g. cpu 256 takes \
                 512, 1024 or 2048; cpu 1024 takes 2048 to 8192 in steps of 1024"
            ),
        );
    } else if cpu == 0 || memory < 6 {
        c.err(
            "memory",
            "cpu and memory must be positive (memory at least 6 MiB)",
        );
    }

    let subnets = c
        .opt_str_list("subnets", r#"["subnet-0abc"]"#)
        .unwrap_or_default();
    if c.get("subnets").is_none() {
        c.errors.push(FieldError::new(
            "subnets",
            format!(
                "{}: awsvpc tasks need 1 to 16 subnet ids (subnet-...)",
                FieldError::MISSING
            ),
        ));
    } else if subnets.is_empty() || subnets.len() > 16 {
        c.err(
            "subnets",
            "awsvpc tasks need 1 to 16 subnet ids (subnet-...)",
        );
    }
    for s in &subnets {
        if !s.starts_with("subnet-") {
            c.err("subnets", format!("{s:?} is not a subnet id (subnet-...)"));
        }
    }
    let security_groups = c
        .opt_str_list("security_groups", r#"["sg-0abc"]"#)
        .unwrap_or_default();
    if security_groups.len() > 5 {
        c.err("security_groups", "at most 5 security groups");
    }
    for s in &security_groups {
        if !s.starts_with("sg-") {
            c.err(
                "security_groups",
                format!("{s:?} is not a security group id (sg-...)"),
            );
        }
    }
    let assign_public_ip = match c.get("assign_public_ip").cloned() {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            c.err("assign_public_ip", "must be true or false");
            false
        }
    };
    let task_role_arn = c.opt_str("task_role_arn");
    let execution_role_arn = c.opt_str("execution_role_arn");
    for (field, arn) in [
        ("task_role_arn", &task_role_arn),
        ("execution_role_arn", &execution_role_arn),
    ] {
        if let Some(arn) = arn {
            if !is_role_arn(arn) {
                c.err(
                    field,
                    "must be an IAM role ARN: arn:aws:iam::<account>:role/<name>",
                );
            }
        }
    }
    let tags = c.opt_str_map("tags").unwrap_or_default();
    if tags.len() > 40 {
        c.err("tags", "at most 40 tags (Ferry adds its own)");
    }
    for (k, v) in &tags {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("ferry:") || lower.starts_with("aws:") {
            c.err(
                "tags",
                format!("{k}: the ferry: and aws: prefixes are reserved"),
            );
        } else if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            c.err(
                "tags",
                format!("{k:?}: keys take 1-128 characters, values 256"),
            );
        }
    }
    let log_group = c.opt_str("log_group");
    if let Some(g) = &log_group {
        let ok = !g.is_empty()
            && g.len() <= 512
            && g.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-/.#".contains(ch));
        if !ok {
            c.err("log_group", "must be a CloudWatch Logs group name");
        }
    }
    if (log_group.is_some() || !secrets.is_empty()) && execution_role_arn.is_none() {
        c.err(
            "execution_role_arn",
            "is required with log_group or secrets: ECS pulls them with the execution role",
        );
    }
    let endpoint = c.opt_str("endpoint");
    if let Some(e) = &endpoint {
        // Only its form here; whether the operator allows it is checked where the operator's
        // list is known (the server, and the backend before any call).
        if let Err(e) = Origin::parse(e) {
            c.err("endpoint", e.to_string());
        }
    }

    c.finish(EcsJobSpec {
        region,
        cluster,
        image,
        command,
        env,
        secrets,
        cpu,
        memory,
        capacity,
        subnets,
        security_groups,
        assign_public_ip,
        task_role_arn,
        execution_role_arn,
        tags,
        log_group,
        endpoint,
    })
}

impl EcsJobSpec {
    /// What cannot be overridden per run, in the task definition; its hash names the family.
    pub(crate) fn task_definition_content(&self, region: &str) -> Value {
        json!({
            "v": 1,
            "image": self.image,
            "cpu": self.cpu,
            "memory": self.memory,
            "fargate": self.capacity.is_fargate(),
            "network_mode": "awsvpc",
            "task_role_arn": self.task_role_arn,
            "execution_role_arn": self.execution_role_arn,
            "secrets": self.secrets,
            "log_group": self.log_group,
            "log_region": self.log_group.as_ref().map(|_| region),
        })
    }

    /// The task definition family: `ferry-` and a hash of [`Self::task_definition_content`].
    pub fn family(&self, region: &str) -> String {
        let content = self.task_definition_content(region).to_string();
        let hash = hex::encode(Sha256::digest(content.as_bytes()));
        format!("ferry-{}", &hash[..32])
    }
}

fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", p, "iam", "", account, res]
        if p.starts_with("aws")
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && res.strip_prefix("role/").is_some_and(|n| !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))))
}

fn is_secret_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", p, svc, region, account, res]
        if p.starts_with("aws")
        && (*svc == "secretsmanager" && res.starts_with("secret:")
            || *svc == "ssm" && res.starts_with("parameter"))
        && !region.is_empty()
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
}

/// The ECS-specific checks, on top of [`JobVars`]' typed reads.
trait EcsChecks {
    fn check_region(&mut self, r: &str) -> bool;
    fn check_cluster(&mut self, cluster: &str);
    fn strategy(&mut self, value: &Value) -> Vec<CapacityProvider>;
}

impl EcsChecks for JobVars {
    fn check_region(&mut self, r: &str) -> bool {
        let ok = (4..=25).contains(&r.len())
            && r.contains('-')
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.err("region", "must be an AWS region, e.g. eu-west-1");
        }
        ok
    }

    fn check_cluster(&mut self, cluster: &str) {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 255
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let ok = match cluster.strip_prefix("arn:") {
            Some(_) => {
                cluster.contains(":ecs:")
                    && cluster
                        .rsplit_once(":cluster/")
                        .is_some_and(|(_, n)| name_ok(n))
            }
            None => name_ok(cluster),
        };
        if !ok {
            self.err("cluster", "must be a cluster name or ARN");
        }
    }

    fn strategy(&mut self, value: &Value) -> Vec<CapacityProvider> {
        const FIELD: &str = "capacity_provider_strategy";
        let Some(items) = value.as_array().filter(|a| !a.is_empty() && a.len() <= 20) else {
            self.err(
                FIELD,
                "must be a list of 1 to 20 {capacity_provider, weight, base}",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let provider = item.get("capacity_provider").and_then(Value::as_str);
            let num = |k: &str| match item.get(k) {
                None => Some(0),
                Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()),
            };
            let known = item.as_object().is_some_and(|o| {
                o.keys()
                    .all(|k| ["capacity_provider", "weight", "base"].contains(&k.as_str()))
            });
            match (provider, num("weight"), num("base")) {
                (Some(p), Some(weight), Some(base)) if !p.is_empty() && known && weight <= 1000 && base <= 100_000 => {
                    out.push(CapacityProvider {
                        capacity_provider: p.to_owned(),
                        weight,
                        base,
                    })
                }
                _ => self.err(
                    FIELD,
                    "each item is {\"capacity_provider\": \"FARGATE_SPOT\", \"weight\": 0-1000, \"base\": 0-100000}",
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template letting runs set every variable they ever may, so the cases below check
    /// the values.
    fn base() -> Value {
        let runs_may_set: Vec<&str> = KNOWN.into_iter().filter(|k| *k != "endpoint").collect();
        json!({
            "region": "eu-west-1",
            "cluster": "flows",
            "image": "public.ecr.aws/docker/library/python:3.12",
            "subnets": ["subnet-0abc"],
            "security_groups": ["sg-0abc"],
            "run_variables": runs_may_set,
        })
    }

    #[test]
    fn a_template_endpoint_must_be_an_origin() {
        for (endpoint, ok) in [
            ("https://ecs.eu-west-1.amazonaws.com", true),
            ("http://127.0.0.1:5000", true),
            ("https://ecs.eu-west-1.amazonaws.com/path", false),
            ("https://user@ecs.eu-west-1.amazonaws.com", false),
            ("ftp://x", false),
            ("ecs.eu-west-1.amazonaws.com", false),
        ] {
            let mut t = base();
            t["endpoint"] = json!(endpoint);
            let errors = spec_for(&t, &Value::Null).err().unwrap_or_default();
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields.is_empty(), ok, "{endpoint}: {errors:?}");
        }
    }

    #[test]
    fn by_default_runs_set_what_runs_and_with_how_much_only() {
        let t = json!({
            "region": "eu-west-1", "cluster": "flows", "image": "x:1",
            "subnets": ["subnet-0abc"], "security_groups": ["sg-0abc"],
        });
        // Positive control.
        assert!(spec_for(&t, &json!({"image": "y:2", "command": ["a"], "env": {"A": "1"}, "cpu": 512, "memory": 1024, "tags": {"a": "b"}})).is_ok());
        for refused in [
            json!({"task_role_arn": "arn:aws:iam::123456789012:role/other"}),
            json!({"execution_role_arn": "arn:aws:iam::123456789012:role/other"}),
            json!({"cluster": "other"}),
            json!({"region": "us-east-1"}),
            json!({"subnets": ["subnet-1"]}),
            json!({"endpoint": "https://ecs.eu-west-1.amazonaws.com"}),
            json!({"run_variables": ["cluster"]}),
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

    #[test]
    fn defaults() {
        let s = spec_for(&base(), &Value::Null).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((s.cpu, s.memory), (256, 512));
        assert_eq!(s.capacity, Capacity::LaunchType("FARGATE".into()));
        assert!(!s.assign_public_ip);
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn variables_are_checked() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (json!({"cpu": 1024, "memory": 4096}), vec![]),
            (json!({"cpu": "512", "memory": "2048"}), vec![]),
            (json!({"cpu": 16384, "memory": 122880}), vec![]),
            (json!({"cpu": 256, "memory": 4096}), vec!["memory"]),
            (json!({"cpu": 300, "memory": 512}), vec!["memory"]),
            (json!({"cpu": 8192, "memory": 18432}), vec!["memory"]),
            (
                json!({"cpu": 300, "memory": 700, "launch_type": "EC2"}),
                vec![],
            ),
            (json!({"cpu": -1}), vec!["cpu"]),
            (json!({"launch_type": "LAMBDA"}), vec!["launch_type"]),
            (
                json!({"capacity_provider_strategy": [{"capacity_provider": "FARGATE_SPOT", "weight": 1}]}),
                vec![],
            ),
            (
                json!({"capacity_provider_strategy": []}),
                vec!["capacity_provider_strategy"],
            ),
            (
                json!({"capacity_provider_strategy": [{"provider": "x"}]}),
                vec!["capacity_provider_strategy"],
            ),
            (
                json!({"launch_type": "FARGATE", "capacity_provider_strategy": [{"capacity_provider": "FARGATE"}]}),
                vec!["capacity_provider_strategy"],
            ),
            (json!({"subnets": []}), vec!["subnets"]),
            (json!({"subnets": ["vpc-1"]}), vec!["subnets"]),
            (json!({"subnets": "subnet-1"}), vec!["subnets", "subnets"]),
            (
                json!({"security_groups": ["default"]}),
                vec!["security_groups"],
            ),
            (json!({"assign_public_ip": "yes"}), vec!["assign_public_ip"]),
            (json!({"image": ""}), vec!["image"]),
            (json!({"image": "a b"}), vec!["image"]),
            (json!({"image": null}), vec!["image"]),
            (json!({"command": ["python", "-m", "flow"]}), vec![]),
            (json!({"command": "python -m flow"}), vec!["command"]),
            (json!({"env": {"A": "1"}}), vec![]),
            (json!({"env": {"A": 1}}), vec!["env"]),
            (json!({"env": {"FERRY_RUN_ID": "x"}}), vec!["env"]),
            (
                json!({"secrets": {"DB": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCd"}, "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec![],
            ),
            (
                json!({"secrets": {"DB": "arn:aws:ssm:eu-west-1:123456789012:parameter/db"}, "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec![],
            ),
            (
                json!({"secrets": {"DB": "hunter2"}, "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec!["secrets"],
            ),
            (
                json!({"secrets": {"DB": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"}}),
                vec!["execution_role_arn"],
            ),
            (
                json!({"secrets": {"A": "arn:aws:ssm:eu-west-1:123456789012:parameter/a"}, "env": {"A": "1"}, "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec!["secrets"],
            ),
            (
                json!({"task_role_arn": "arn:aws:iam::123456789012:role/flow"}),
                vec![],
            ),
            (
                json!({"task_role_arn": "arn:aws:iam::123456789012:user/flow"}),
                vec!["task_role_arn"],
            ),
            (
                json!({"task_role_arn": "arn:aws:iam::1234:role/flow"}),
                vec!["task_role_arn"],
            ),
            (
                json!({"execution_role_arn": "exec"}),
                vec!["execution_role_arn"],
            ),
            (json!({"tags": {"team": "data"}}), vec![]),
            (json!({"tags": {"ferry:run-id": "x"}}), vec!["tags"]),
            (json!({"tags": {"aws:x": "x"}}), vec!["tags"]),
            (
                json!({"log_group": "/ferry/flows", "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec![],
            ),
            (
                json!({"log_group": "/ferry/flows"}),
                vec!["execution_role_arn"],
            ),
            (
                json!({"log_group": "bad group", "execution_role_arn": "arn:aws:iam::123456789012:role/exec"}),
                vec!["log_group"],
            ),
            (
                json!({"endpoint": "http://127.0.0.1:5000"}),
                vec!["endpoint"],
            ),
            (json!({"region": "EU West"}), vec!["region"]),
            (
                json!({"cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/flows"}),
                vec![],
            ),
            (json!({"cluster": "bad/cluster"}), vec!["cluster"]),
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
    fn unknown_template_keys_are_refused_too() {
        let mut t = base();
        t["privileged"] = json!(true);
        let errors = spec_for(&t, &json!({})).err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "privileged");
        assert!(errors[0].message.contains("job_template"), "{errors:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let errors = spec_for(&json!({}), &json!({"cpu": 3}))
            .err()
            .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["image", "memory", "subnets"]);
    }

    #[test]
    fn family_covers_only_what_runs_cannot_override() {
        let spec = |vars: Value| spec_for(&base(), &vars).unwrap_or_else(|e| panic!("{e:?}"));
        let f = spec(json!({})).family("eu-west-1");
        assert!(f.starts_with("ferry-") && f.len() == 38, "{f}");
        // Per-run values: the same family.
        for vars in [
            json!({"command": ["x"]}),
            json!({"env": {"A": "1"}}),
            json!({"subnets": ["subnet-9"]}),
            json!({"tags": {"a": "b"}}),
            json!({"cluster": "other"}),
        ] {
            assert_eq!(spec(vars.clone()).family("eu-west-1"), f, "{vars}");
        }
        // What is in the task definition: another family.
        for vars in [
            json!({"image": "other:1"}),
            json!({"cpu": 512, "memory": 1024}),
            json!({"task_role_arn": "arn:aws:iam::123456789012:role/flow"}),
        ] {
            assert_ne!(spec(vars.clone()).family("eu-west-1"), f, "{vars}");
        }
    }
}
