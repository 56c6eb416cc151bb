//! Ferry's cryptography: generated bearer secrets (API keys, service tokens) and their
//! peppered HMAC-SHA-256 for storage; secret files created with mode 0600; and envelope
//! encryption — a root key ([`Keyring`]; the local key file by default) wraps each workspace's
//! key, which wraps a fresh data key per write, which seals the value with AES-256-GCM bound
//! to its place (see [`envelope`]); and the ES256 keys and tokens of Ferry's OIDC issuer
//! ([`jwt`]).
//!
//! Secrets in memory are `secrecy` types or zeroized buffers: redacted in `Debug`, zeroized
//! on drop.

pub mod envelope;
pub mod jwt;
mod keyring;
mod secret_file;
mod token;

use std::path::PathBuf;

pub use envelope::{Binding, Key, Sealed, WorkspaceKey};
pub use keyring::{
    unwrap_with, wrap_with, Keyring, LocalKeyring, RotationLock, WrappedKey, ROOT_KEY_FILE,
};
pub use secret_file::{load_or_create_secret_file, SecretFileError};
pub use token::{constant_time_eq, generate_token, Pepper, TOKEN_PREFIX_LEN};

/// Errors of envelope encryption and key handling. None carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stored value or key is not in the expected format.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// The value was sealed under another workspace key than the one given.
    #[error("sealed under workspace key {found}, not {expected}")]
    WrongKey { expected: String, found: String },
    /// Authentication failed: the ciphertext was changed, moved to another place, or sealed
    /// under another key.
    #[error("decryption failed: the value was changed, moved, or sealed under another key")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    /// The plaintext should have been text.
    #[error("the opened value is not UTF-8")]
    NotUtf8,
    /// A workspace key names a root key this keyring does not hold.
    #[error(
        "root key {0} is not available (was it retired before every workspace key was re-wrapped?)"
    )]
    UnknownRootKey(String),
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    #[error("root key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("accessing {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another root-key rotation is running ({path} exists; if none is, remove it and run the rotation again)")]
    RotationRunning { path: PathBuf },
    /// A key-management service refused or failed (KMS backends).
    #[error("key service: {0}")]
    Service(String),
}
