//! ferry-kms's tests: the AWS KMS keyring against moto (`ferry-moto`), the Cloud KMS keyring
//! against an in-process fake of Cloud KMS's REST API ([`gcp_fake`]). Both features are on in
//! this build (ferry-kms's dev-dependency on itself), so these always run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aws;
mod gcp;
mod gcp_fake;

use ferry_core::WorkspaceId;
use ferry_crypto::{Key, Keyring, WrappedKey};

/// Unwraps or panics with the error.
pub async fn unwrap_ok(k: &dyn Keyring, ws: WorkspaceId, w: &WrappedKey) -> Key {
    k.unwrap(ws, w).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The error chain as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}

/// Asserts that `text` shows none of `key`'s material (hex or base64).
#[track_caller]
pub fn shows_no_key(text: &str, key: &Key) {
    use base64::Engine as _;
    let hex: String = key.bytes().iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.bytes());
    assert!(
        !text.to_lowercase().contains(&hex) && !text.contains(&b64),
        "key material in {text:?}"
    );
}
