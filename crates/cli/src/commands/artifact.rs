//! `ferry artifact`: upload and list flows (WebAssembly files).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::commands::client;
use crate::output::{self, Format, Table};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Upload a flow (.wasm) and print its digest, which runs name with --artifact.
    Push {
        /// The .wasm file.
        file: PathBuf,
    },
    /// List the workspace's flows.
    List,
}

pub async fn run(g: &Global, command: ArtifactCommand) -> anyhow::Result<()> {
    let client = client(g)?;
    match command {
        ArtifactCommand::Push { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (artifact, created) = client.upload_artifact(bytes).await?;
            match g.output {
                Format::Json => output::json(&artifact),
                Format::Table => {
                    let what = if created {
                        "Uploaded"
                    } else {
                        "Already uploaded"
                    };
                    output::out(&format!(
                        "{what} {} ({}, {} bytes)\n{}",
                        file.display(),
                        artifact.kind,
                        artifact.size,
                        artifact.digest
                    ))?;
                    Ok(())
                }
            }
        }
        ArtifactCommand::List => {
            let artifacts = client.list_artifacts().await?;
            match g.output {
                Format::Json => output::json(&artifacts),
                Format::Table if artifacts.is_empty() => {
                    output::note("No artifacts yet; upload one with `ferry artifact push FILE`.")?;
                    Ok(())
                }
                Format::Table => {
                    let mut t = Table::new(&["DIGEST", "KIND", "SIZE", "UPLOADED"]);
                    for a in artifacts {
                        t.row(vec![
                            a.digest,
                            a.kind,
                            a.size.to_string(),
                            a.created_at.to_rfc3339(),
                        ]);
                    }
                    output::out(&t.render())?;
                    Ok(())
                }
            }
        }
    }
}
