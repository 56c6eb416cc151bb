//! `ferry admin`: creating a workspace and its first admin key (directly in the local data
//! directory / database, or through a running server's internal API), rotating the root key,
//! and verifying the audit log.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use ferry_client::Client;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::args;
use crate::commands::server::ServerArgs;
use crate::output::{self, Format};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a workspace and print its first admin API key (shown only once).
    ///
    /// By default this works on the local data directory or database (the same flags as
    /// `ferry serve`). With --internal-url it asks a running server's internal API instead.
    Bootstrap(Bootstrap),
    /// Replace the root key and re-wrap every workspace key under the new one.
    ///
    /// Works on the local data directory (the root key file) and the database (the same
    /// flags as `ferry serve`). Credentials and secrets are not rewritten: they keep
    /// decrypting. The old key is kept as root-key.<id>.retired until every workspace key is
    /// re-wrapped, so an interrupted rotation loses nothing; run the command again to finish it.
    RotateRootKey(ServerArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's chain (HMAC-SHA-256 under the audit key, which the root key
    /// unwraps: the same flags as `ferry serve`): reports OK, or the first entry that was
    /// changed, removed or reordered, and exits non-zero.
    Verify(AuditVerify),
}

#[derive(Debug, Args)]
pub struct AuditVerify {
    /// Only this workspace (default: every workspace).
    #[arg(long, value_name = "NAME")]
    pub workspace: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct Bootstrap {
    /// The new workspace's name.
    #[arg(long, value_name = "NAME")]
    pub workspace: String,

    /// A running server's internal API (e.g. http://127.0.0.1:8081), instead of the local
    /// data directory.
    #[arg(long, env = "FERRY_INTERNAL_URL", value_name = "URL")]
    pub internal_url: Option<String>,

    /// The internal API's service token (with --internal-url).
    #[arg(
        long,
        env = "FERRY_INTERNAL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = args::parse_secret
    )]
    pub internal_token: Option<SecretString>,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// What bootstrapping produced.
struct Created {
    workspace_id: String,
    workspace: String,
    api_key: SecretString,
}

pub async fn run(g: &Global, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::RotateRootKey(server) => {
            let config = server.load()?;
            let r = ferry_server::root_key_rotate(&config).await?;
            match g.output {
                Format::Json => output::json(&json!({
                    "old_key_id": r.old_key_id,
                    "new_key_id": r.new_key_id,
                    "rewrapped": r.rewrapped,
                    "retired": r.retired,
                })),
                Format::Table => {
                    output::out(&format!(
                        "Root key rotated: {} -> {}.\nRe-wrapped {} workspace key(s); removed retired key(s): {}.",
                        r.old_key_id,
                        r.new_key_id,
                        r.rewrapped,
                        if r.retired.is_empty() {
                            "none".to_owned()
                        } else {
                            r.retired.join(", ")
                        }
                    ))?;
                    Ok(())
                }
            }
        }
        AdminCommand::Audit(AuditCommand::Verify(v)) => {
            let config = v.server.load()?;
            let reports = ferry_server::audit_verify(&config, v.workspace.as_deref()).await?;
            let failed = reports.iter().filter(|(_, r)| r.problem.is_some()).count();
            match g.output {
                Format::Json => {
                    let items: Vec<_> = reports
                        .iter()
                        .map(|(ws, r)| {
                            json!({
                                "workspace": ws.name.as_str(),
                                "workspace_id": ws.id.to_string(),
                                "ok": r.problem.is_none(),
                                "entries": r.entries,
                                "head_hash": r.head_hash.as_deref().map(hex),
                                "problem": r.problem.as_ref().map(|p| json!({"seq": p.seq, "reason": p.reason})),
                            })
                        })
                        .collect();
                    output::json(&json!({ "items": items }))?;
                }
                Format::Table => {
                    let mut lines = Vec::new();
                    for (ws, r) in &reports {
                        lines.push(match &r.problem {
                            None => format!(
                                "{}: OK ({} entries{})",
                                ws.name,
                                r.entries,
                                r.head_hash
                                    .as_deref()
                                    .map(|h| format!(", head {}", hex(h)))
                                    .unwrap_or_default()
                            ),
                            Some(p) => {
                                format!("{}: FAILED at entry {}: {}", ws.name, p.seq, p.reason)
                            }
                        });
                    }
                    if lines.is_empty() {
                        lines.push("No workspaces.".to_owned());
                    }
                    output::out(&lines.join("\n"))?;
                }
            }
            if failed > 0 {
                bail!("the audit log of {failed} workspace(s) failed verification");
            }
            Ok(())
        }
        AdminCommand::Bootstrap(b) => {
            let internal_url = b.internal_url.as_deref().filter(|u| !u.trim().is_empty());
            let created = match internal_url {
                Some(url) => over_http(url, b.internal_token.as_ref(), &b.workspace).await?,
                None => local(b.server, &b.workspace).await?,
            };
            print(g.output, &created)
        }
    }
}

async fn local(server: ServerArgs, workspace: &str) -> anyhow::Result<Created> {
    let config = server.load()?;
    let b = ferry_server::bootstrap(&config, workspace).await?;
    Ok(Created {
        workspace_id: b.workspace_id,
        workspace: b.workspace,
        api_key: SecretString::from(b.api_key),
    })
}

async fn over_http(
    url: &str,
    token: Option<&SecretString>,
    workspace: &str,
) -> anyhow::Result<Created> {
    let Some(token) = token.filter(|t| !t.expose_secret().trim().is_empty()) else {
        bail!(
            "no internal token: set FERRY_INTERNAL_TOKEN (a server generates one into \
             <data-dir>/internal-token on first start)"
        );
    };
    let client = Client::new(url, token.expose_secret().trim())?;
    let ws = client
        .create_workspace(workspace)
        .await
        .map_err(internal_error)
        .with_context(|| format!("cannot create workspace {workspace:?}"))?;
    let key = client
        .create_api_key(&ws.id, "admin")
        .await
        .map_err(internal_error)
        .with_context(|| {
            format!(
                "workspace {} was created (id {}) but its admin key could not be minted",
                ws.name, ws.id
            )
        })?;
    Ok(Created {
        workspace_id: ws.id,
        workspace: ws.name,
        api_key: SecretString::from(key.key),
    })
}

/// The client's 401 hint names FERRY_API_KEY; on the internal API it is the service token.
fn internal_error(e: ferry_client::Error) -> anyhow::Error {
    match e {
        ferry_client::Error::Api {
            status: 401,
            message,
            ..
        } => anyhow!("{message}: the internal API refused the token; check FERRY_INTERNAL_TOKEN"),
        other => other.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print(format: Format, c: &Created) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(&json!({
            "workspace_id": c.workspace_id,
            "workspace": c.workspace,
            "api_key": c.api_key.expose_secret(),
        })),
        Format::Table => {
            output::out(&format!(
                "Created workspace {} (id {}).\n\
                 Its admin API key is shown only this once; keep it somewhere safe:\n\
                 \n    export FERRY_API_KEY={}",
                c.workspace,
                c.workspace_id,
                c.api_key.expose_secret()
            ))?;
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn bootstrap(argv: &[&str]) -> Bootstrap {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Admin(AdminCommand::Bootstrap(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bootstrap_locally() {
        let b = bootstrap(&[
            "ferry",
            "admin",
            "bootstrap",
            "--workspace",
            "acme",
            "--data-dir",
            "/d",
        ]);
        assert_eq!(b.workspace, "acme");
        assert_eq!(b.server.data_dir.unwrap().to_str(), Some("/d"));
    }

    #[test]
    fn bootstrap_over_http() {
        let b = bootstrap(&[
            "ferry",
            "admin",
            "bootstrap",
            "--workspace",
            "acme",
            "--internal-url",
            "http://127.0.0.1:8081",
            "--internal-token",
            "fry_internal_x",
        ]);
        assert_eq!(b.internal_url.as_deref(), Some("http://127.0.0.1:8081"));
        assert_eq!(b.internal_token.unwrap().expose_secret(), "fry_internal_x");
    }

    #[test]
    fn rotate_root_key_and_audit_verify_parse() {
        let cli =
            Cli::try_parse_from(["ferry", "admin", "rotate-root-key", "--data-dir", "/d"]).unwrap();
        match cli.command {
            Command::Admin(AdminCommand::RotateRootKey(s)) => {
                assert_eq!(s.data_dir.unwrap().to_str(), Some("/d"))
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "ferry",
            "admin",
            "audit",
            "verify",
            "--workspace",
            "acme",
            "--database-url",
            "postgres://h/db",
        ])
        .unwrap();
        match cli.command {
            Command::Admin(AdminCommand::Audit(AuditCommand::Verify(v))) => {
                assert_eq!(v.workspace.as_deref(), Some("acme"));
                assert_eq!(v.server.database_url.as_deref(), Some("postgres://h/db"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bootstrap_needs_a_workspace() {
        let e = Cli::try_parse_from(["ferry", "admin", "bootstrap"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[tokio::test]
    async fn over_http_without_a_token_names_the_variable() {
        let e = over_http("http://127.0.0.1:1", None, "acme")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("FERRY_INTERNAL_TOKEN"), "{e}");
    }

    #[test]
    fn internal_401_names_the_internal_token() {
        let e = internal_error(ferry_client::Error::Api {
            status: 401,
            code: "unauthorized".into(),
            message: "invalid token".into(),
            request_id: None,
        });
        let s = e.to_string();
        assert!(
            s.contains("FERRY_INTERNAL_TOKEN") && !s.contains("FERRY_API_KEY"),
            "{s}"
        );
    }
}
