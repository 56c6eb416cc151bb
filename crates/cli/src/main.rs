//! The `ferry` binary: the server (`serve`, `migrate`, `admin`) and the client commands
//! (`pool`, `run`) that talk to a running Ferry over its HTTP API.

mod args;
mod commands;
mod output;

use std::io;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::commands::{admin, artifact, bench, credential, pool, run, server, workspace};
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry runs flow runs in pools: in its own WebAssembly sandboxes, or as Cloud Run jobs \
             and ECS tasks in your cloud.",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every client command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Ferry's public API.
    #[arg(
        long,
        global = true,
        env = "FERRY_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,

    /// The API key to authenticate with (prefer the environment variable: a flag shows in `ps`).
    #[arg(
        long,
        global = true,
        env = "FERRY_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        value_parser = args::parse_secret
    )]
    pub api_key: Option<SecretString>,

    /// A PEM file of certificate authorities to trust, besides the system's, for an
    /// `https://` Ferry whose certificate a private CA signed.
    #[arg(long, global = true, env = "FERRY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// `table` for people, `json` for scripts (the API's objects as they are).
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT"
    )]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Ferry: API, scheduler and executors in one process, or one role of them.
    Serve(server::ServerArgs),
    /// Apply the database migrations, then exit.
    Migrate(server::ServerArgs),
    /// Administration: workspaces and their first API keys, the root key, the audit log.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Create, inspect, change and delete pools.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Submit, inspect, follow and cancel runs.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Upload and list flows (WebAssembly files) for managed pools.
    #[command(subcommand)]
    Artifact(artifact::ArtifactCommand),
    /// Register, validate, rotate and delete the workspace's cloud credentials.
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// Set and delete the workspace's secrets (values are write-only).
    #[command(subcommand)]
    Secret(credential::SecretCommand),
    /// The workspace's own settings: its IP allow-list.
    #[command(subcommand)]
    Workspace(workspace::WorkspaceCommand),
    /// Benchmark Ferry end to end on its embedded default: submit N runs through the API and
    /// report submit→completed latency and runs/s.
    Bench(bench::Bench),
    /// Run one executor worker on stdin/stdout (started by `ferry serve`, not by people).
    #[command(hide = true)]
    ExecutorWorker {
        /// Where compiled flows are cached (shared by the workers).
        #[arg(long)]
        cache_dir: std::path::PathBuf,
        /// Where each run's scratch directory is made (best on a tmpfs).
        #[arg(long)]
        scratch_dir: std::path::PathBuf,
    },
}

async fn dispatch(g: &Global, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(a) => server::serve(a).await,
        Command::Migrate(a) => server::migrate(a).await,
        Command::Admin(c) => admin::run(g, c).await,
        Command::Pool(c) => pool::run(g, c).await,
        Command::Run(c) => run::run(g, c).await,
        Command::Artifact(c) => artifact::run(g, c).await,
        Command::Credential(c) => credential::run(g, c).await,
        Command::Secret(c) => credential::run_secret(g, c).await,
        Command::Workspace(c) => workspace::run(g, c).await,
        Command::Bench(b) => bench::run(b).await,
        // Started by `main` before any runtime exists (it confines itself single-threaded).
        Command::ExecutorWorker { .. } => {
            anyhow::bail!("the executor worker cannot start inside an async runtime")
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2 here, with clap's message.
    let cli = Cli::parse();
    let outcome = match cli.command {
        // No async runtime here: the worker confines itself while it has a single thread, so
        // that every thread it later starts is confined too.
        Command::ExecutorWorker {
            cache_dir,
            scratch_dir,
        } => server::executor_worker(cache_dir, scratch_dir),
        command => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(dispatch(&cli.global, command))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`ferry run logs ID | head`): not worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", output::error_report(&e));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli =
            Cli::try_parse_from(["ferry", "pool", "list", "-o", "json", "--url", "http://h:1"])
                .unwrap();
        assert_eq!(cli.global.output, Format::Json);
        assert_eq!(cli.global.url, "http://h:1");
        let cli = Cli::try_parse_from(["ferry", "--output", "json", "pool", "list"]).unwrap();
        assert_eq!(cli.global.output, Format::Json);
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["ferry", "pool", "list"]).unwrap();
        assert_eq!(cli.global.output, Format::Table);
        // FERRY_URL may be set where the tests run; only check there is a URL.
        assert!(!cli.global.url.is_empty());
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        for argv in [
            &["ferry"][..],
            &["ferry", "pool"],
            &["ferry", "pool", "frobnicate"],
            &["ferry", "-o", "yaml", "pool", "list"],
            &["ferry", "run", "show"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let cli = Cli::try_parse_from(["ferry", "--api-key", "fk_secret", "pool", "list"]).unwrap();
        assert!(!format!("{cli:?}").contains("fk_secret"));
    }

    #[test]
    fn broken_pipes_are_recognised() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&e.context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
