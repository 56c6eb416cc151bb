//! Configuration: one typed struct from an optional TOML file, `FERRY_*` environment variables
//! and command-line flags (later ones win), with secrets held as `SecretString`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::SecretString;

/// Which parts of Ferry this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// Everything in one process: the embedded default.
    All,
    /// The HTTP listeners only.
    Api,
    /// The scheduler only (claims and drives runs).
    Scheduler,
    /// Managed sandboxes only.
    Executor,
}

impl ServerRole {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "all" => Self::All,
            "api" => Self::Api,
            "scheduler" => Self::Scheduler,
            "executor" => Self::Executor,
            other => bail!("unknown role {other:?}: expected all, api, scheduler or executor"),
        })
    }

    pub fn serves_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    pub fn schedules(self) -> bool {
        matches!(self, Self::All | Self::Scheduler | Self::Executor)
    }

    /// Whether this process executes managed (WebAssembly) runs.
    pub fn executes_managed(self) -> bool {
        matches!(self, Self::All | Self::Executor)
    }
}

/// Values given on the command line; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub internal_listen: Option<String>,
    pub database_url: Option<String>,
    pub role: Option<String>,
}

/// The file's shape. Every field is optional; unknown fields are refused.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    internal_listen: Option<String>,
    database_url: Option<String>,
    internal_token: Option<String>,
    api_key_pepper: Option<String>,
    role: Option<String>,
    max_body_bytes: Option<usize>,
    root_key: Option<String>,
    kms_endpoint: Option<String>,
    allowed_endpoints: Option<String>,
    oidc_key_rotation_days: Option<u32>,
    metrics_token: Option<String>,
    #[serde(default)]
    engine: crate::timings::EngineSettings,
    #[serde(default)]
    edge: crate::edge::EdgeFile,
}

/// Ferry's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite file, generated secrets and caches. Default `./ferry-data`.
    pub data_dir: PathBuf,
    /// The public API. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The internal API. Default `127.0.0.1:8081`; keep it off public networks.
    pub internal_listen: SocketAddr,
    /// `postgres://…` switches from the embedded SQLite file. May hold a password.
    pub database_url: Option<SecretString>,
    /// The internal listener's token; generated into the data directory when not set.
    pub internal_token: Option<SecretString>,
    /// The pepper of API-key hashes; generated into the data directory when not set. Every
    /// process sharing a database must use the same one.
    pub api_key_pepper: Option<SecretString>,
    pub role: ServerRole,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Scheduler identity and timings (tests shorten them).
    pub engine: Option<ferry_engine::Config>,
    /// Executor worker processes for managed runs (`FERRY_EXECUTOR_WORKERS`, default 2).
    pub executor_workers: usize,
    /// Where executor workers create each run's scratch directory (`FERRY_SCRATCH_DIR`).
    /// Default `/dev/shm/ferry-scratch` where `/dev/shm` exists: a tmpfs makes a run start
    /// ~25x cheaper than a disk directory (BENCHMARKS.md) and the scratch cap a hard limit.
    pub scratch_dir: Option<PathBuf>,
    /// The program started as `<program> executor-worker`; default this executable (tests
    /// running the server in-process point it at the `ferry` binary).
    pub executor_program: Option<PathBuf>,
    /// Install the fake executors (feature `testing`; set by `FERRY_TESTING_FAKE_EXECUTORS`).
    pub fake_executors: bool,
    /// The public API's URL as pushed runs' containers reach it (`FERRY_PUBLIC_URL`); given
    /// to them as `FERRY_API_URL` beside their `FERRY_RUN_TOKEN`.
    pub public_url: Option<String>,
    /// The root key that wraps workspace keys (`FERRY_ROOT_KEY`): `None` (`local`, the
    /// default) is the key file in the data directory; otherwise an AWS KMS or Cloud KMS key
    /// (`aws-kms:…`, `gcp-kms:…`; cargo features `aws-kms`, `gcp-kms`).
    pub root_key: Option<ferry_kms::KeySpec>,
    /// Sends KMS requests here instead of the service's endpoint (`FERRY_KMS_ENDPOINT`).
    pub kms_endpoint: Option<String>,
    /// The origins a push pool's `endpoint` may name (`FERRY_ALLOWED_ENDPOINTS`,
    /// comma-separated `scheme://host[:port]`, `*` only as a whole leftmost label); default:
    /// the clouds' official endpoints only. Tenants choose among these, never beyond.
    pub allowed_endpoints: ferry_core::AllowedEndpoints,
    /// After how many days the OIDC issuer's signing key is replaced
    /// (`FERRY_OIDC_KEY_ROTATION_DAYS`, 1 to 365, default 30). The old key stays published
    /// until every token it signed has expired.
    pub oidc_key_rotation_days: u32,
    /// What managed runs may ask for in all on one executor process's host, in MiB
    /// (`FERRY_EXECUTOR_MEMORY_MB`; default 75 % of the host's memory): a run is started only
    /// when its memory limit fits in what is left and waits `scheduled` otherwise; a pool or
    /// run asking for more than all of it is refused (422).
    pub executor_memory_mb: u64,
    /// The most log bytes a pool or run may keep per run (`FERRY_MAX_LOG_BYTES`, default
    /// 64 MiB): a pool or run asking for more is refused (422).
    pub max_log_bytes: u64,
    /// The scheduler's timings and sizes (`[engine]` in the file, `FERRY_LEASE_TTL_S`, ...):
    /// applied over [`Config::engine`] or the engine's defaults.
    pub engine_settings: crate::timings::EngineSettings,
    /// The bearer that opens `/metrics` on the public listener (`FERRY_METRICS_TOKEN`); unset,
    /// it is served only on the internal listener.
    pub metrics_token: Option<SecretString>,
    /// The public edge: TLS, trusted proxies, rate limits, timeouts, connection caps (`[edge]`
    /// in the file, `FERRY_TLS_CERT`, `FERRY_RATE_LIMIT_RPS`, ...; see [`crate::edge`]).
    pub edge: crate::edge::EdgeSettings,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// What `FERRY_MAX_LOG_BYTES` is when unset: 64 MiB of log per run.
const DEFAULT_MAX_LOG_BYTES: u64 = 64 << 20;

/// 75 % of this host's memory, in MiB (4096 where `/proc/meminfo` cannot be read).
fn default_executor_memory_mb() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    total_kib.map_or(4096, |kib| kib / 1024 * 3 / 4)
}

fn default_scratch_dir() -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    shm.is_dir().then(|| shm.join("ferry-scratch"))
}

/// `FERRY_PUBLIC_URL`, parsed: an `http` or `https` URL with a host and nothing after its path.
fn parse_public_url(u: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(u.trim()).ok().filter(|p| {
        matches!(p.scheme(), "http" | "https")
            && p.host().is_some()
            && p.query().is_none()
            && p.fragment().is_none()
    });
    match parsed {
        Some(_) => Ok(u.to_owned()),
        None => {
            bail!("FERRY_PUBLIC_URL must be an http:// or https:// URL with a host (got {u:?})")
        }
    }
}

fn parse_addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("{what} {s:?} is not an address like 127.0.0.1:8080"))
}

impl Config {
    /// Loads the file (if any), then the environment, then `o`.
    pub fn load(o: ConfigOverrides) -> anyhow::Result<Config> {
        let file_path = o
            .config_file
            .clone()
            .or_else(|| env("FERRY_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => Self::read_file(p)?,
            None => FileConfig::default(),
        };
        let pick = |flag: Option<String>, var: &str, file: Option<String>| {
            flag.or_else(|| env(var)).or(file)
        };
        let data_dir = o
            .data_dir
            .or_else(|| env("FERRY_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("ferry-data"));
        let listen =
            pick(o.listen, "FERRY_LISTEN", file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let internal = pick(
            o.internal_listen,
            "FERRY_INTERNAL_LISTEN",
            file.internal_listen,
        )
        .unwrap_or_else(|| "127.0.0.1:8081".into());
        let role = pick(o.role, "FERRY_ROLE", file.role).unwrap_or_else(|| "all".into());
        let database_url = pick(o.database_url, "FERRY_DATABASE_URL", file.database_url);
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                bail!("FERRY_DATABASE_URL must start with postgres://, postgresql:// or sqlite:");
            }
        }
        let max_body_bytes = file.max_body_bytes.unwrap_or(1024 * 1024);
        let root_key = match env("FERRY_ROOT_KEY").or(file.root_key).as_deref() {
            None | Some("local") => None,
            Some(spec) => Some(
                ferry_kms::KeySpec::parse(spec)
                    .map_err(|e| anyhow::anyhow!("FERRY_ROOT_KEY: {e}"))?,
            ),
        };
        Ok(Config {
            data_dir,
            listen: parse_addr("listen address", &listen)?,
            internal_listen: parse_addr("internal listen address", &internal)?,
            database_url: database_url.map(SecretString::from),
            internal_token: env("FERRY_INTERNAL_TOKEN")
                .or(file.internal_token)
                .map(SecretString::from),
            api_key_pepper: env("FERRY_API_KEY_PEPPER")
                .or(file.api_key_pepper)
                .map(SecretString::from),
            role: ServerRole::parse(&role)?,
            max_body_bytes,
            engine: None,
            executor_workers: match env("FERRY_EXECUTOR_WORKERS") {
                Some(n) => n
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .with_context(|| {
                        format!("FERRY_EXECUTOR_WORKERS must be a number from 1 to 64 (got {n:?})")
                    })?,
                None => 2,
            },
            executor_program: None,
            scratch_dir: env("FERRY_SCRATCH_DIR")
                .map(PathBuf::from)
                .or_else(default_scratch_dir),
            fake_executors: env("FERRY_TESTING_FAKE_EXECUTORS").is_some_and(|v| v == "1"),
            public_url: env("FERRY_PUBLIC_URL")
                .map(|u| parse_public_url(&u))
                .transpose()?,
            root_key,
            kms_endpoint: env("FERRY_KMS_ENDPOINT").or(file.kms_endpoint),
            metrics_token: env("FERRY_METRICS_TOKEN")
                .or(file.metrics_token)
                .map(SecretString::from),
            edge: crate::edge::EdgeSettings::resolve(file.edge)?,
            engine_settings: {
                let settings = file.engine.with_env()?;
                // Checked now, so a bad value stops the start with its name.
                settings.apply(&mut ferry_engine::Config::with_owner("check"))?;
                settings
            },
            max_log_bytes: match env("FERRY_MAX_LOG_BYTES") {
                Some(n) => n.trim().parse().ok().with_context(|| {
                    format!("FERRY_MAX_LOG_BYTES must be a whole number of bytes (got {n:?})")
                })?,
                None => DEFAULT_MAX_LOG_BYTES,
            },
            executor_memory_mb: match env("FERRY_EXECUTOR_MEMORY_MB") {
                Some(n) => n.trim().parse().ok().filter(|n| *n >= 1).with_context(|| {
                    format!("FERRY_EXECUTOR_MEMORY_MB must be a whole number of MiB, at least 1 (got {n:?})")
                })?,
                None => default_executor_memory_mb(),
            },
            allowed_endpoints: match env(ferry_core::endpoint::ENV).or(file.allowed_endpoints) {
                Some(list) => ferry_core::AllowedEndpoints::parse(&list)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", ferry_core::endpoint::ENV))?,
                None => ferry_core::AllowedEndpoints::default(),
            },
            oidc_key_rotation_days: match env("FERRY_OIDC_KEY_ROTATION_DAYS") {
                Some(n) => n
                    .parse()
                    .ok()
                    .filter(|n| (1..=365).contains(n))
                    .with_context(|| {
                        format!("FERRY_OIDC_KEY_ROTATION_DAYS must be a number of days from 1 to 365 (got {n:?})")
                    })?,
                None => match file.oidc_key_rotation_days {
                    Some(n) if !(1..=365).contains(&n) => {
                        bail!("oidc_key_rotation_days must be from 1 to 365 (got {n})")
                    }
                    Some(n) => n,
                    None => crate::issuer::DEFAULT_ROTATION_DAYS,
                },
            },
        })
    }

    fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))
    }

    /// The database to use: the configured URL, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        use secrecy::ExposeSecret;
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("ferry.db").display()),
        }
    }

    /// A configuration for tests: a data directory, loopback ports chosen by the OS.
    pub fn for_tests(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            internal_token: None,
            api_key_pepper: None,
            role: ServerRole::All,
            max_body_bytes: 1024 * 1024,
            engine: None,
            executor_workers: 2,
            executor_program: None,
            scratch_dir: default_scratch_dir(),
            fake_executors: false,
            public_url: None,
            root_key: None,
            kms_endpoint: None,
            allowed_endpoints: ferry_core::AllowedEndpoints::default(),
            oidc_key_rotation_days: crate::issuer::DEFAULT_ROTATION_DAYS,
            executor_memory_mb: default_executor_memory_mb(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            engine_settings: crate::timings::EngineSettings::default(),
            edge: crate::edge::EdgeSettings::default(),
            metrics_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!(ServerRole::parse("api").ok(), Some(ServerRole::Api));
        assert!(ServerRole::parse("worker").is_err());
        assert!(ServerRole::All.serves_api() && ServerRole::All.schedules());
        assert!(!ServerRole::Api.schedules() && !ServerRole::Scheduler.serves_api());
    }

    #[test]
    fn file_with_unknown_field_is_refused() {
        let r: Result<FileConfig, _> = toml::from_str("listen = \"127.0.0.1:1\"\nlisten_port = 3");
        assert!(r.is_err());
    }

    #[test]
    fn flags_override_defaults() {
        let c = Config::load(ConfigOverrides {
            listen: Some("127.0.0.1:9999".into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        });
        let c = c.ok();
        assert_eq!(c.as_ref().map(|c| c.listen.port()), Some(9999));
        assert_eq!(
            c.map(|c| c.database_url()),
            Some("sqlite:///tmp/x/ferry.db".to_string())
        );
    }

    #[test]
    fn root_keys_parse_from_the_file() {
        let file = |text: &str| -> anyhow::Result<Config> {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("ferry.toml");
            std::fs::write(&path, text)?;
            Config::load(ConfigOverrides {
                config_file: Some(path),
                ..Default::default()
            })
        };
        let root_key = |text: &str| file(text).map(|c| c.root_key.map(|k| k.to_string()));
        assert_eq!(root_key("").ok(), Some(None));
        assert_eq!(root_key("root_key = \"local\"").ok(), Some(None));
        assert_eq!(
            root_key("root_key = \"aws-kms:alias/ferry\"").ok(),
            Some(Some("aws-kms:alias/ferry".to_owned()))
        );
        let e = root_key("root_key = \"vault:x\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("FERRY_ROOT_KEY") && e.contains("aws-kms:"),
            "{e}"
        );
        let c = file("kms_endpoint = \"http://127.0.0.1:4566\"").ok();
        assert_eq!(
            c.and_then(|c| c.kms_endpoint).as_deref(),
            Some("http://127.0.0.1:4566")
        );
    }

    #[test]
    fn public_urls_are_parsed_not_prefix_matched() {
        assert_eq!(
            parse_public_url("https://ferry.example.com")
                .ok()
                .as_deref(),
            Some("https://ferry.example.com")
        );
        assert!(parse_public_url("http://127.0.0.1:8080").is_ok());
        for bad in [
            "https://",
            "https://[::1",
            "https://x?y=1",
            "ftp://x",
            "https//x",
        ] {
            let e = parse_public_url(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("FERRY_PUBLIC_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        let e = Config::load(ConfigOverrides {
            listen: Some("localhost".into()),
            ..Default::default()
        });
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("listen address"), "{msg}");
    }
}
