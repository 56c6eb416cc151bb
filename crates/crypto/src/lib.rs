//! Ferry's cryptography. For now: generated bearer secrets (API keys, service tokens), their
//! peppered HMAC-SHA-256 for storage, constant-time comparison, and secret files created
//! with mode 0600. Envelope encryption joins it with the credentials issue.

mod secret_file;
mod token;

pub use secret_file::{load_or_create_secret_file, SecretFileError};
pub use token::{constant_time_eq, generate_token, Pepper, TOKEN_PREFIX_LEN};
