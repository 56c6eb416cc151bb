//! The subcommands, one module per group, and what the client commands share.

pub mod admin;
pub mod artifact;
pub mod bench;
pub mod credential;
pub mod pool;
pub mod run;
pub mod server;
pub mod workspace;

use anyhow::{bail, Context};
use ferry_client::Client;
use secrecy::ExposeSecret;

use crate::Global;

/// A client of the public API, authenticated with the API key of the global options.
pub fn client(g: &Global) -> anyhow::Result<Client> {
    let Some(key) = &g.api_key else {
        bail!(
            "no API key: set FERRY_API_KEY (or pass --api-key); `ferry admin bootstrap \
             --workspace NAME` creates a workspace and prints its first admin key"
        );
    };
    if key.expose_secret().trim().is_empty() {
        bail!("FERRY_API_KEY is empty; set it to an API key (`ferry admin bootstrap` mints the first)");
    }
    let key = key.expose_secret().trim();
    match &g.ca_cert {
        None => Ok(Client::new(&g.url, key)?),
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading FERRY_CA_CERT {}", path.display()))?;
            Ok(Client::with_ca(&g.url, key, &pem)?)
        }
    }
}
