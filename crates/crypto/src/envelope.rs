//! Envelope encryption of workspace secrets: a fresh 256-bit data key per write seals the
//! payload with AES-256-GCM, and the workspace key wraps the data key. Both ciphertexts carry
//! associated data binding them to their place — (workspace, object id, kind, version) — so a
//! sealed value copied into another row, workspace, kind or version does not open.
//!
//! The sealed form is one self-describing, versioned byte string ([`Sealed`]):
//!
//! ```text
//! offset  size  field
//! 0       3     magic "FRY"
//! 3       1     format version (1)
//! 4       1     n = length of the workspace key id
//! 5       n     workspace key id (UTF-8), e.g. "wk-0123456789abcdef"
//! 5+n     1     m = length of the wrapped data key (60)
//! 6+n     m     wrapped data key: 12-byte nonce || AES-256-GCM(workspace key, data key) + 16-byte tag
//! 6+n+m   12    payload nonce
//! 18+n+m  rest  AES-256-GCM(data key, payload) + 16-byte tag
//! ```
//!
//! The associated data of the data key is `aad("ferry/data-key/v1", binding)` and that of the
//! payload `aad("ferry/payload/v1", binding)`, where `aad` concatenates the label, the
//! workspace id, the object id, the kind and the decimal version, each preceded by its length
//! as a big-endian u32 (so no two bindings encode alike).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ferry_core::WorkspaceId;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// Bytes in an AES-256 key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
const MAGIC: &[u8; 3] = b"FRY";
const FORMAT_V1: u8 = 1;

/// A 256-bit AES key: zeroized on drop, redacted in `Debug`.
pub struct Key(SecretBox<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut key = SecretBox::new(Box::new([0u8; KEY_LEN]));
        rand::rngs::OsRng.fill_bytes(key.expose_secret_mut());
        Key(key)
    }

    /// A key from exactly [`KEY_LEN`] bytes (copied; the caller zeroizes its own copy).
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, Error> {
        if bytes.len() != KEY_LEN {
            return Err(Error::Malformed("a key must be 32 bytes"));
        }
        let mut key = SecretBox::new(Box::new([0u8; KEY_LEN]));
        key.expose_secret_mut().copy_from_slice(bytes);
        Ok(Key(key))
    }

    /// The key material, for handing to a key service that wraps it (the KMS root-key
    /// backends). Never log it or put it in an error.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(self.bytes()))
    }
}

/// Encrypts `plaintext` under `key` with a random nonce; returns `nonce || ciphertext+tag`.
pub(crate) fn encrypt(key: &Key, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens `nonce || ciphertext+tag` made by [`encrypt`].
pub(crate) fn decrypt(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Malformed("ciphertext too short"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    key.cipher()
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| Error::Decrypt)
}

/// Where a sealed value belongs. It opens only with the same binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub workspace: WorkspaceId,
    /// The id of the object that holds the value (a credential, a secret, a run).
    pub object: String,
    /// What the value is, e.g. `credential/aws-access-key`, `secret`, `run/sensitive-parameters`.
    pub kind: String,
    /// The object's version: every replacement of the value gets the next one.
    pub version: u32,
}

impl Binding {
    pub fn new(
        workspace: WorkspaceId,
        object: impl std::fmt::Display,
        kind: impl Into<String>,
        version: u32,
    ) -> Binding {
        Binding {
            workspace,
            object: object.to_string(),
            kind: kind.into(),
            version,
        }
    }

    fn aad(&self, label: &str) -> Vec<u8> {
        let workspace = self.workspace.to_string();
        let version = self.version.to_string();
        let fields: [&str; 5] = [label, &workspace, &self.object, &self.kind, &version];
        let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
        for f in fields {
            // Fields are short (ids, kinds); a length past u32 cannot occur.
            let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        out
    }
}

/// The parts of a sealed value (see the module documentation for the byte layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the workspace key that wrapped the data key.
    pub key_id: String,
    /// `nonce || AES-256-GCM(workspace key, data key) + tag`.
    pub wrapped_data_key: Vec<u8>,
    /// The payload's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// `AES-256-GCM(data key, payload) + tag`.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// The stored byte string.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let key_id_len = u8::try_from(self.key_id.len())
            .map_err(|_| Error::Malformed("workspace key id longer than 255 bytes"))?;
        let wrapped_len = u8::try_from(self.wrapped_data_key.len())
            .map_err(|_| Error::Malformed("wrapped data key too long"))?;
        let mut out = Vec::with_capacity(
            6 + self.key_id.len() + self.wrapped_data_key.len() + NONCE_LEN + self.ciphertext.len(),
        );
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_V1);
        out.push(key_id_len);
        out.extend_from_slice(self.key_id.as_bytes());
        out.push(wrapped_len);
        out.extend_from_slice(&self.wrapped_data_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        Ok(out)
    }

    /// Parses a stored byte string; refuses anything but format version 1 with sane lengths.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sealed, Error> {
        let mut r = Reader(bytes);
        if r.take(3)? != MAGIC {
            return Err(Error::Malformed("not a Ferry sealed value"));
        }
        if r.byte()? != FORMAT_V1 {
            return Err(Error::Malformed("unknown sealed-value format version"));
        }
        let n = usize::from(r.byte()?);
        let key_id = std::str::from_utf8(r.take(n)?)
            .map_err(|_| Error::Malformed("workspace key id is not UTF-8"))?
            .to_owned();
        let m = usize::from(r.byte()?);
        if m != WRAPPED_KEY_LEN {
            return Err(Error::Malformed("wrapped data key has the wrong length"));
        }
        let wrapped_data_key = r.take(m)?.to_vec();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(r.take(NONCE_LEN)?);
        let ciphertext = r.0.to_vec();
        if ciphertext.len() < TAG_LEN {
            return Err(Error::Malformed("ciphertext too short"));
        }
        Ok(Sealed {
            key_id,
            wrapped_data_key,
            nonce,
            ciphertext,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Malformed("sealed value is truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
}

/// A workspace's data-encryption key, unwrapped: seals and opens that workspace's values and
/// computes their fingerprints. Redacted in `Debug`, zeroized on drop.
#[derive(Debug)]
pub struct WorkspaceKey {
    id: String,
    key: Key,
}

impl WorkspaceKey {
    /// A fresh key with a fresh id (`wk-<16 hex>`).
    pub fn generate() -> WorkspaceKey {
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        WorkspaceKey {
            id: format!("wk-{}", hex::encode(id)),
            key: Key::generate(),
        }
    }

    /// The key `id` made of `key` (as unwrapped from storage).
    pub fn new(id: impl Into<String>, key: Key) -> WorkspaceKey {
        WorkspaceKey { id: id.into(), key }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key itself, for wrapping by a keyring.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Seals `plaintext` for `binding` under a fresh data key; returns the stored form.
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let data_key = Key::generate();
        let wrapped_data_key = encrypt(
            &self.key,
            &binding.aad("ferry/data-key/v1"),
            data_key.bytes(),
        )?;
        let payload = encrypt(&data_key, &binding.aad("ferry/payload/v1"), plaintext)?;
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        Sealed {
            key_id: self.id.clone(),
            wrapped_data_key,
            nonce: n,
            ciphertext: ciphertext.to_vec(),
        }
        .to_bytes()
    }

    /// Opens a value sealed for exactly `binding` under this key.
    pub fn open(&self, binding: &Binding, stored: &[u8]) -> Result<SecretBox<Vec<u8>>, Error> {
        let sealed = Sealed::from_bytes(stored)?;
        if sealed.key_id != self.id {
            return Err(Error::WrongKey {
                expected: self.id.clone(),
                found: sealed.key_id,
            });
        }
        let data_key = decrypt(
            &self.key,
            &binding.aad("ferry/data-key/v1"),
            &sealed.wrapped_data_key,
        )?;
        let data_key = Key::from_bytes(&data_key)?;
        let mut payload = Zeroizing::new(Vec::with_capacity(NONCE_LEN + sealed.ciphertext.len()));
        payload.extend_from_slice(&sealed.nonce);
        payload.extend_from_slice(&sealed.ciphertext);
        let mut plain = decrypt(&data_key, &binding.aad("ferry/payload/v1"), &payload)?;
        Ok(SecretBox::new(Box::new(std::mem::take(&mut *plain))))
    }

    /// [`WorkspaceKey::open`] for UTF-8 text.
    pub fn open_string(&self, binding: &Binding, stored: &[u8]) -> Result<SecretString, Error> {
        let bytes = self.open(binding, stored)?;
        let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| Error::NotUtf8)?;
        Ok(SecretString::from(text))
    }

    /// A fingerprint of `material`: HMAC-SHA-256 under a key derived from this workspace key,
    /// its first 16 bytes in hex, as `hmac-sha256:<32 hex>`. Equal material in one workspace
    /// has equal fingerprints; nothing about the material can be learnt from it, and the
    /// same material in two workspaces has unrelated fingerprints.
    pub fn fingerprint(&self, material: &[u8]) -> String {
        let fp_key = Zeroizing::new(hmac(self.key.bytes(), b"ferry/fingerprint-key/v1"));
        let mac = hmac(&fp_key[..], material);
        format!("hmac-sha256:{}", hex::encode(&mac[..16]))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC-SHA-256 takes keys of any length; the fallback is never taken.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => Sha256::digest(data).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding::new(
            WorkspaceId::new(),
            uuid::Uuid::new_v4(),
            "credential/aws-access-key",
            1,
        )
    }

    fn plain(b: &SecretBox<Vec<u8>>) -> Vec<u8> {
        b.expose_secret().clone()
    }

    #[test]
    fn seals_and_opens() {
        let wk = WorkspaceKey::generate();
        let b = binding();
        let sealed = wk.seal(&b, b"hunter2").unwrap_or_default();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            wk.open(&b, &sealed).map(|p| plain(&p)).ok(),
            Some(b"hunter2".to_vec())
        );
        // A fresh data key and nonces per write: equal plaintexts seal differently.
        assert_ne!(wk.seal(&b, b"hunter2").unwrap_or_default(), sealed);
    }

    #[test]
    fn a_moved_ciphertext_does_not_open() {
        let wk = WorkspaceKey::generate();
        let b = binding();
        let sealed = wk.seal(&b, b"s").unwrap_or_default();
        let moved = [
            Binding {
                workspace: WorkspaceId::new(),
                ..b.clone()
            },
            Binding {
                object: uuid::Uuid::new_v4().to_string(),
                ..b.clone()
            },
            Binding {
                kind: "secret".into(),
                ..b.clone()
            },
            Binding {
                version: 2,
                ..b.clone()
            },
        ];
        for other in moved {
            assert!(
                matches!(wk.open(&other, &sealed), Err(Error::Decrypt)),
                "{other:?}"
            );
        }
        let other_key = WorkspaceKey::new(wk.id(), Key::generate());
        assert!(matches!(other_key.open(&b, &sealed), Err(Error::Decrypt)));
        let renamed = WorkspaceKey::generate();
        assert!(matches!(
            renamed.open(&b, &sealed),
            Err(Error::WrongKey { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let wk = WorkspaceKey::generate();
        let b = binding();
        let sealed = wk.seal(&b, b"value").unwrap_or_default();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(wk.open(&b, &bad).is_err(), "byte {i}");
        }
        for n in 0..sealed.len() {
            assert!(wk.open(&b, &sealed[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn the_format_round_trips_and_is_versioned() {
        let wk = WorkspaceKey::generate();
        let sealed = wk.seal(&binding(), b"x").unwrap_or_default();
        let parsed = Sealed::from_bytes(&sealed);
        assert_eq!(
            parsed.as_ref().map(|s| s.key_id.as_str()).ok(),
            Some(wk.id())
        );
        assert_eq!(
            parsed.ok().and_then(|s| s.to_bytes().ok()),
            Some(sealed.clone())
        );
        assert_eq!(&sealed[..4], b"FRY\x01");
        let mut v2 = sealed.clone();
        v2[3] = 2;
        assert!(matches!(Sealed::from_bytes(&v2), Err(Error::Malformed(_))));
    }

    #[test]
    fn bindings_encode_unambiguously() {
        let ws = WorkspaceId::new();
        let a = Binding::new(ws, "ab", "c", 1).aad("l");
        let b = Binding::new(ws, "a", "bc", 1).aad("l");
        assert_ne!(a, b);
    }

    #[test]
    fn fingerprints_are_per_workspace_and_stable() {
        let (a, b) = (WorkspaceKey::generate(), WorkspaceKey::generate());
        let fp = a.fingerprint(b"material");
        assert_eq!(fp, a.fingerprint(b"material"));
        assert_ne!(fp, a.fingerprint(b"materiaL"));
        assert_ne!(fp, b.fingerprint(b"material"));
        assert!(fp.starts_with("hmac-sha256:") && fp.len() == "hmac-sha256:".len() + 32);
    }

    #[test]
    fn debug_output_is_redacted() {
        let wk = WorkspaceKey::generate();
        let shown = format!("{wk:?}");
        assert!(shown.contains("REDACTED"));
        assert!(!shown.contains(&hex::encode(wk.key().bytes())));
    }
}
