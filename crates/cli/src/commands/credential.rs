//! `ferry credential` and `ferry secret`: a workspace's cloud credentials and secrets. Secret
//! material is read from a file or standard input, never from the command line (where `ps`
//! and shell history would keep it), and never printed.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use ferry_client::{Client, Credential, Secret};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::commands::client;
use crate::output::{self, Format, Table};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Register a credential from a JSON file (`-`: standard input), shaped as
    /// {"name": "prod", "kind": "aws-assume-role", "role_arn": "...", "region": "..."}.
    Create {
        /// The registration JSON (holds the secret material).
        #[arg(long = "from", value_name = "FILE|-")]
        from: PathBuf,
    },
    /// List the workspace's credentials (metadata only).
    List,
    /// Show a credential (metadata, fingerprint, external id, last validation).
    Show {
        /// Its name or id.
        credential: String,
    },
    /// Replace a credential's material (same name and kind) from a JSON file or `-`.
    Rotate {
        /// Its name or id.
        credential: String,
        #[arg(long = "from", value_name = "FILE|-")]
        from: PathBuf,
    },
    /// Check a credential live, without side effects, and say what is missing.
    Validate {
        /// Its name or id.
        credential: String,
        /// Also check this pool's cluster (ecs) or project (cloud-run).
        #[arg(long, value_name = "POOL")]
        pool: Option<String>,
    },
    /// Delete a credential (refused while a pool uses it).
    Delete {
        /// Its name or id.
        credential: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret's value, read from a file or from standard input (`-`, the default).
    Set {
        name: String,
        #[arg(long = "from", value_name = "FILE|-", default_value = "-")]
        from: PathBuf,
    },
    /// List the workspace's secrets (names and dates; values are write-only).
    List,
    /// Show a secret's metadata.
    Show { name: String },
    /// Delete a secret.
    Delete { name: String },
}

/// Reads a file, or standard input for `-`, into memory that is zeroized on drop.
fn read_secret_input(from: &Path) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    if from == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text =
            std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    }
    Ok(SecretString::from(text))
}

fn registration(from: &Path) -> anyhow::Result<Value> {
    let text = read_secret_input(from)?;
    match serde_json::from_str::<Value>(text.expose_secret()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        // serde's message may quote the input: say only where it went wrong.
        Ok(_) => bail!("{} must hold a JSON object", from.display()),
        Err(e) => bail!(
            "{} is not valid JSON (line {}, column {})",
            from.display(),
            e.line(),
            e.column()
        ),
    }
}

/// A credential's id from its name or id.
async fn resolve(client: &Client, credential: &str) -> anyhow::Result<String> {
    let all = client.list_credentials().await?;
    all.iter()
        .find(|c| c.name == credential || c.id == credential)
        .map(|c| c.id.clone())
        .with_context(|| format!("no credential named {credential:?} in this workspace"))
}

fn show(format: Format, c: &Credential) -> anyhow::Result<()> {
    if format == Format::Json {
        return output::json(c);
    }
    let mut rows = vec![
        ("ID", c.id.clone()),
        ("NAME", c.name.clone()),
        ("KIND", c.kind.clone()),
        ("VERSION", c.version.to_string()),
        ("FINGERPRINT", c.fingerprint.clone()),
    ];
    if let Some(x) = &c.external_id {
        rows.push(("EXTERNAL ID", x.clone()));
    }
    if c.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        rows.push(("METADATA", output::fields(&c.metadata)));
    }
    match &c.validation {
        None => rows.push(("VALIDATION", "not validated yet".into())),
        Some(v) => {
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            rows.push((
                "VALIDATION",
                format!(
                    "{} at {}",
                    if ok { "passed" } else { "FAILED" },
                    v.get("checked_at").and_then(Value::as_str).unwrap_or("?")
                ),
            ));
            let mut lines = Vec::new();
            for check in v
                .get("checks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                lines.push(format!(
                    "{:<8} {}: {}",
                    check.get("outcome").and_then(Value::as_str).unwrap_or("?"),
                    check.get("check").and_then(Value::as_str).unwrap_or("?"),
                    check.get("message").and_then(Value::as_str).unwrap_or("")
                ));
            }
            if !lines.is_empty() {
                rows.push(("CHECKS", lines.join("\n")));
            }
        }
    }
    rows.push(("CREATED", output::time(&c.created_at)));
    rows.push(("UPDATED", output::time(&c.updated_at)));
    output::out(&output::details(&rows))?;
    Ok(())
}

fn show_secret(format: Format, s: &Secret) -> anyhow::Result<()> {
    if format == Format::Json {
        return output::json(s);
    }
    output::out(&output::details(&[
        ("NAME", s.name.clone()),
        ("VERSION", s.version.to_string()),
        ("CREATED", output::time(&s.created_at)),
        ("UPDATED", output::time(&s.updated_at)),
    ]))?;
    Ok(())
}

pub async fn run(g: &Global, command: CredentialCommand) -> anyhow::Result<()> {
    let client = client(g)?;
    match command {
        CredentialCommand::Create { from } => {
            let c = client.create_credential(&registration(&from)?).await?;
            show(g.output, &c)
        }
        CredentialCommand::List => {
            let all = client.list_credentials().await?;
            match g.output {
                Format::Json => output::json(&all),
                Format::Table if all.is_empty() => {
                    output::note(
                        "No credentials yet; register one with `ferry credential create --from FILE`.",
                    )?;
                    Ok(())
                }
                Format::Table => {
                    let mut t = Table::new(&["NAME", "KIND", "VERSION", "VALIDATED", "ID"]);
                    for c in all {
                        let validated = match c.validation.as_ref().and_then(|v| v.get("ok")) {
                            Some(Value::Bool(true)) => "passed",
                            Some(_) => "failed",
                            None => "-",
                        };
                        t.row(vec![
                            c.name,
                            c.kind,
                            c.version.to_string(),
                            validated.into(),
                            c.id,
                        ]);
                    }
                    output::out(&t.render())?;
                    Ok(())
                }
            }
        }
        CredentialCommand::Show { credential } => {
            let id = resolve(&client, &credential).await?;
            show(g.output, &client.get_credential(&id).await?)
        }
        CredentialCommand::Rotate { credential, from } => {
            let id = resolve(&client, &credential).await?;
            let c = client.rotate_credential(&id, &registration(&from)?).await?;
            show(g.output, &c)
        }
        CredentialCommand::Validate { credential, pool } => {
            let id = resolve(&client, &credential).await?;
            let c = client.validate_credential(&id, pool.as_deref()).await?;
            show(g.output, &c)?;
            let ok = c
                .validation
                .as_ref()
                .and_then(|v| v.get("ok"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !ok {
                bail!("credential {credential} failed validation (see the checks above)");
            }
            Ok(())
        }
        CredentialCommand::Delete { credential } => {
            let id = resolve(&client, &credential).await?;
            client.delete_credential(&id).await?;
            if g.output == Format::Table {
                output::note(&format!("Deleted credential {credential}."))?;
            }
            Ok(())
        }
    }
}

pub async fn run_secret(g: &Global, command: SecretCommand) -> anyhow::Result<()> {
    let client = client(g)?;
    match command {
        SecretCommand::Set { name, from } => {
            let value = read_secret_input(&from)?;
            // A trailing newline from `echo` or an editor is not part of the value.
            let trimmed = value.expose_secret().trim_end_matches(['\n', '\r']);
            let (s, created) = client.put_secret(&name, trimmed).await?;
            if g.output == Format::Table {
                output::note(&format!(
                    "{} secret {}.",
                    if created { "Created" } else { "Replaced" },
                    s.name
                ))?;
                Ok(())
            } else {
                output::json(&s)
            }
        }
        SecretCommand::List => {
            let all = client.list_secrets().await?;
            match g.output {
                Format::Json => output::json(&all),
                Format::Table if all.is_empty() => {
                    output::note("No secrets yet; set one with `ferry secret set NAME < FILE`.")?;
                    Ok(())
                }
                Format::Table => {
                    let mut t = Table::new(&["NAME", "VERSION", "UPDATED"]);
                    for s in all {
                        t.row(vec![
                            s.name,
                            s.version.to_string(),
                            output::time(&s.updated_at),
                        ]);
                    }
                    output::out(&t.render())?;
                    Ok(())
                }
            }
        }
        SecretCommand::Show { name } => show_secret(g.output, &client.get_secret(&name).await?),
        SecretCommand::Delete { name } => {
            client.delete_secret(&name).await?;
            if g.output == Format::Table {
                output::note(&format!("Deleted secret {name}."))?;
            }
            Ok(())
        }
    }
}
