//! Minting API keys: a random token shown once, stored only as its peppered HMAC.

use ferry_core::{Role, WorkspaceId};
use ferry_crypto::{generate_token, Pepper, TOKEN_PREFIX_LEN};
use ferry_store::{Actor, ApiKey, Store};
use secrecy::{ExposeSecret, SecretString};

/// The token kind prefix of API keys: `fry_key_…`.
pub const API_KEY_KIND: &str = "fry_key";

/// Creates a key for `workspace` with `role`, recorded in the audit log as `actor`'s;
/// returns its record and the secret (once).
pub async fn api_key_mint(
    store: &Store,
    pepper: &Pepper,
    workspace: WorkspaceId,
    role: Role,
    actor: Actor,
) -> Result<(ApiKey, SecretString), ferry_store::Error> {
    let token = generate_token(API_KEY_KIND);
    let hash = pepper.hash(token.expose_secret());
    let prefix: String = token
        .expose_secret()
        .chars()
        .take(TOKEN_PREFIX_LEN)
        .collect();
    let key = store
        .api_key_create_by(workspace, role, &hash, &prefix, actor)
        .await?;
    Ok((key, token))
}
