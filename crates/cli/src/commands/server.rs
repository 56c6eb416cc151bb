//! `ferry serve` and `ferry migrate`: configuration flags, handed to the server crate.

use std::path::PathBuf;

use clap::Args;
use ferry_server::{Config, ConfigOverrides};

use crate::output;

/// Where Ferry keeps its state and where it listens. Each flag overrides the configuration
/// file and the environment.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// A TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG", value_name = "FILE", value_parser = path())]
    pub config: Option<PathBuf>,

    /// The data directory: SQLite database, root key, generated tokens, artifact cache
    /// [default: ./ferry-data].
    #[arg(long, env = "FERRY_DATA_DIR", value_name = "DIR", value_parser = path())]
    pub data_dir: Option<PathBuf>,

    /// The public API's address [default: 127.0.0.1:8080].
    #[arg(long, env = "FERRY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// The internal API's address; keep it off public networks [default: 127.0.0.1:8081].
    #[arg(long, env = "FERRY_INTERNAL_LISTEN", value_name = "ADDR")]
    pub internal_listen: Option<String>,

    /// A `postgres://` URL to use PostgreSQL instead of the embedded SQLite database.
    #[arg(
        long,
        env = "FERRY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// What this process runs: all, api, scheduler or executor [default: all].
    #[arg(long, env = "FERRY_ROLE", value_name = "ROLE", value_parser = parse_role)]
    pub role: Option<String>,
}

/// Paths, allowing the empty one (clap's own path parser refuses it) so an empty variable can
/// mean unset.
fn path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

const ROLES: [&str; 4] = ["all", "api", "scheduler", "executor"];

/// A role; empty is allowed here (an empty `FERRY_ROLE` means unset) and dropped in `load`.
fn parse_role(s: &str) -> Result<String, String> {
    if s.is_empty() || ROLES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected one of {}", ROLES.join(", ")))
    }
}

/// An empty environment variable means unset, as it does for the server's own settings.
fn set<T: AsRef<std::ffi::OsStr>>(v: Option<T>) -> Option<T> {
    v.filter(|v| !v.as_ref().is_empty())
}

impl ServerArgs {
    pub fn load(self) -> anyhow::Result<Config> {
        Config::load(ConfigOverrides {
            config_file: set(self.config),
            data_dir: set(self.data_dir),
            listen: set(self.listen),
            internal_listen: set(self.internal_listen),
            database_url: set(self.database_url),
            role: set(self.role),
        })
    }
}

/// `ferry serve`: runs until SIGINT or SIGTERM. The server sets up its own logging.
pub async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    ferry_server::serve(config).await
}

/// `ferry executor-worker` (hidden): one sandbox worker process, driven by `ferry serve`.
/// Called before the async runtime is started: the worker confines itself while it has a
/// single thread, then starts its own.
pub fn executor_worker(
    cache_dir: std::path::PathBuf,
    scratch_dir: std::path::PathBuf,
) -> anyhow::Result<()> {
    ferry_server::executor_worker(cache_dir, scratch_dir)
}

/// `ferry migrate`.
pub async fn migrate(args: ServerArgs) -> anyhow::Result<()> {
    let config = args.load()?;
    ferry_server::migrate(&config).await?;
    output::out("Database migrated.")?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    fn server_args(argv: &[&str]) -> super::ServerArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) | Command::Migrate(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_flags() {
        let a = server_args(&[
            "ferry",
            "serve",
            "--config",
            "f.toml",
            "--data-dir",
            "/d",
            "--listen",
            "0.0.0.0:80",
            "--internal-listen",
            "127.0.0.1:81",
            "--database-url",
            "postgres://x",
            "--role",
            "scheduler",
        ]);
        assert_eq!(a.config.unwrap().to_str(), Some("f.toml"));
        assert_eq!(a.data_dir.unwrap().to_str(), Some("/d"));
        assert_eq!(a.listen.as_deref(), Some("0.0.0.0:80"));
        assert_eq!(a.internal_listen.as_deref(), Some("127.0.0.1:81"));
        assert_eq!(a.database_url.as_deref(), Some("postgres://x"));
        assert_eq!(a.role.as_deref(), Some("scheduler"));
    }

    #[test]
    fn migrate_takes_the_same_flags() {
        let a = server_args(&["ferry", "migrate", "--data-dir", "/d"]);
        assert_eq!(a.data_dir.unwrap().to_str(), Some("/d"));
    }

    #[test]
    fn empty_values_mean_unset() {
        let a = server_args(&["ferry", "serve", "--data-dir", "", "--role", ""]);
        assert_eq!(super::set(a.data_dir), None);
        assert_eq!(super::set(a.role), None);
        assert_eq!(super::set(Some("x")), Some("x"));
    }

    #[test]
    fn unknown_roles_are_usage_errors() {
        let e = Cli::try_parse_from(["ferry", "serve", "--role", "everything"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
