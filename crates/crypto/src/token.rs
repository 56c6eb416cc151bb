//! Bearer secrets and their storage form: only `HMAC-SHA-256(pepper, token)` is ever stored,
//! so a stolen database does not yield usable keys without the pepper, which lives elsewhere.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// How many leading characters of a token are kept as its (non-secret) display prefix.
pub const TOKEN_PREFIX_LEN: usize = 12;

/// A fresh random token: `<kind>_` and 256 bits in URL-safe base64, e.g. `fry_key_…`.
pub fn generate_token(kind: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("{kind}_{body}"))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server-side secret mixed into every stored token hash.
pub struct Pepper(SecretBox<Vec<u8>>);

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper([REDACTED])")
    }
}

impl Pepper {
    pub fn new(secret: &SecretString) -> Self {
        Self(SecretBox::new(Box::new(
            secret.expose_secret().as_bytes().to_vec(),
        )))
    }

    /// The stored form of a token.
    pub fn hash(&self, token: &str) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA-256 accepts keys of every length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate_token("fry_key");
        let b = generate_token("fry_key");
        assert!(a.expose_secret().starts_with("fry_key_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), "fry_key_".len() + 43);
    }

    #[test]
    fn hashes_depend_on_pepper_and_token() {
        let p1 = Pepper::new(&SecretString::from("pepper-one"));
        let p2 = Pepper::new(&SecretString::from("pepper-two"));
        assert_eq!(p1.hash("t"), p1.hash("t"));
        assert_ne!(p1.hash("t"), p1.hash("u"));
        assert_ne!(p1.hash("t"), p2.hash("t"));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn pepper_debug_is_redacted() {
        let p = Pepper::new(&SecretString::from("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
