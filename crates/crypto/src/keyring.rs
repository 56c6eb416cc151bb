//! Root keys: the [`Keyring`] that wraps and unwraps workspace keys, and its default backend,
//! [`LocalKeyring`], a key file in the data directory.
//!
//! A workspace key is wrapped with AES-256-GCM under the root key, with associated data
//! `ferry/workspace-key/v1|<workspace id>|<root key id>`: a wrapped key copied to another
//! workspace, or relabelled with another root key's id, does not unwrap.
//!
//! The local root key lives in `<data dir>/root-key` as 64 hex digits, created with mode 0600
//! on first start; a file that group or others can read is refused. Its id is derived from the
//! key (`local-` and 16 hex digits of a SHA-256 over it), so the file needs no other metadata.
//!
//! Rotation ([`LocalKeyring::rotate`]) keeps the old key as `root-key.<id>.retired`, puts a new
//! key in `root-key`, and leaves the re-wrapping of workspace keys to the caller; retired keys
//! stay loadable until [`LocalKeyring::retire_unused`] removes those that no workspace key
//! references any more. A rotation interrupted at any point leaves every workspace key
//! unwrappable, and running it again finishes the job.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ferry_core::WorkspaceId;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::{decrypt, encrypt, Key, KEY_LEN};
use crate::secret_file::{load_or_create_secret_file, read_secret_file_checked};
use crate::Error;

/// A workspace key wrapped by a root key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which root key wrapped it.
    pub root_key_id: String,
    /// `nonce || AES-256-GCM(root key, workspace key) + tag`.
    pub blob: Vec<u8>,
}

/// Holds the root key(s) and wraps workspace keys with them.
#[async_trait]
pub trait Keyring: Send + Sync + std::fmt::Debug {
    /// The id of the root key that new wraps use.
    fn key_id(&self) -> String;
    /// Wraps workspace `ws`'s key under the current root key.
    async fn wrap(&self, ws: WorkspaceId, key: &Key) -> Result<WrappedKey, Error>;
    /// Unwraps a key wrapped by [`Keyring::wrap`] for the same workspace, under whichever root
    /// key `wrapped.root_key_id` names (the current one or a retired one still held).
    async fn unwrap(&self, ws: WorkspaceId, wrapped: &WrappedKey) -> Result<Key, Error>;
}

/// The associated data of a wrapped workspace key.
fn wrap_aad(ws: WorkspaceId, root_key_id: &str) -> Vec<u8> {
    format!("ferry/workspace-key/v1|{ws}|{root_key_id}").into_bytes()
}

/// Wraps with a root key held in memory (the local backend's, and tests').
pub fn wrap_with(
    root: &Key,
    root_key_id: &str,
    ws: WorkspaceId,
    key: &Key,
) -> Result<WrappedKey, Error> {
    Ok(WrappedKey {
        root_key_id: root_key_id.to_owned(),
        blob: encrypt(root, &wrap_aad(ws, root_key_id), key.bytes())?,
    })
}

/// Unwraps with a root key held in memory.
pub fn unwrap_with(root: &Key, ws: WorkspaceId, wrapped: &WrappedKey) -> Result<Key, Error> {
    let bytes = decrypt(root, &wrap_aad(ws, &wrapped.root_key_id), &wrapped.blob)?;
    Key::from_bytes(&bytes)
}

/// The file name of the current root key in the data directory.
pub const ROOT_KEY_FILE: &str = "root-key";
const RETIRED_PREFIX: &str = "root-key.";
const RETIRED_SUFFIX: &str = ".retired";
const ROTATION_LOCK: &str = "root-key.rotating";

/// The id of a local root key: derived from the key, so it cannot disagree with it.
fn local_id(key: &Key) -> String {
    let mut h = Sha256::new();
    h.update(b"ferry/root-key-id/v1");
    h.update(key.bytes());
    format!("local-{}", hex::encode(&h.finalize()[..8]))
}

fn parse_key_text(path: &Path, text: &SecretString) -> Result<Key, Error> {
    let bad = |reason: &str| Error::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let hex_text = text.expose_secret().trim();
    if hex_text.len() != KEY_LEN * 2 {
        return Err(bad("must hold 64 hex digits (a 256-bit key)"));
    }
    let bytes =
        Zeroizing::new(hex::decode(hex_text).map_err(|_| bad("must hold hex digits only"))?);
    Key::from_bytes(&bytes)
}

fn key_text(key: &Key) -> SecretString {
    SecretString::from(hex::encode(key.bytes()))
}

fn retired_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{RETIRED_PREFIX}{id}{RETIRED_SUFFIX}"))
}

/// What a [`LocalKeyring`] holds: the current root key and the retired ones.
struct Loaded {
    current: String,
    keys: HashMap<String, Arc<Key>>,
}

/// The local-file root key (the default backend). Cheap to share behind an `Arc`.
pub struct LocalKeyring {
    dir: PathBuf,
    loaded: RwLock<Loaded>,
}

impl std::fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyring")
            .field("dir", &self.dir)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl LocalKeyring {
    /// Opens the root key in `dir`, creating it (mode 0600) if there is none, and any retired
    /// keys of an unfinished rotation. Refuses key files that group or others can read.
    pub fn open(dir: &Path) -> Result<LocalKeyring, Error> {
        let loaded = Self::load(dir)?;
        Ok(LocalKeyring {
            dir: dir.to_owned(),
            loaded: RwLock::new(loaded),
        })
    }

    fn load(dir: &Path) -> Result<Loaded, Error> {
        let path = dir.join(ROOT_KEY_FILE);
        let text = load_or_create_secret_file(&path, || key_text(&Key::generate()))?;
        let current_key = parse_key_text(&path, &text)?;
        let current = local_id(&current_key);
        let mut keys = HashMap::new();
        keys.insert(current.clone(), Arc::new(current_key));
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(id) = name
                .strip_prefix(RETIRED_PREFIX)
                .and_then(|rest| rest.strip_suffix(RETIRED_SUFFIX))
            else {
                continue;
            };
            let path = entry.path();
            let key = parse_key_text(&path, &read_secret_file_checked(&path)?)?;
            if local_id(&key) != id {
                return Err(Error::KeyFile {
                    path,
                    reason: "holds a different key than its name says".to_owned(),
                });
            }
            keys.insert(id.to_owned(), Arc::new(key));
        }
        Ok(Loaded { current, keys })
    }

    /// Re-reads the key files (after a rotation by another process).
    pub fn reload(&self) -> Result<(), Error> {
        let fresh = Self::load(&self.dir)?;
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *loaded = fresh;
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Arc<Key>> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.keys.get(id).cloned()
    }

    fn current(&self) -> (String, Option<Arc<Key>>) {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            loaded.current.clone(),
            loaded.keys.get(&loaded.current).cloned(),
        )
    }

    /// The ids of the retired root keys still held.
    pub fn retired_ids(&self) -> Vec<String> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ids: Vec<String> = loaded
            .keys
            .keys()
            .filter(|id| **id != loaded.current)
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Starts a rotation: takes the rotation lock, keeps the current key as
    /// `root-key.<id>.retired`, and atomically replaces `root-key` with a new key. Returns the
    /// lock (held until dropped), the old id and the new id. The caller then re-wraps every
    /// workspace key and calls [`LocalKeyring::retire_unused`].
    pub fn rotate(&self) -> Result<(RotationLock, String, String), Error> {
        let lock = RotationLock::take(&self.dir)?;
        self.reload()?;
        let (old_id, old_key) = self.current();
        let old_key = old_key.ok_or_else(|| Error::UnknownRootKey(old_id.clone()))?;
        let retired = retired_path(&self.dir, &old_id);
        match write_new(&retired, &key_text(&old_key)) {
            Ok(()) => {}
            // An earlier, interrupted rotation retired the same key already.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                let kept = parse_key_text(&retired, &read_secret_file_checked(&retired)?)?;
                if local_id(&kept) != old_id {
                    return Err(Error::KeyFile {
                        path: retired,
                        reason: "holds a different key than its name says".to_owned(),
                    });
                }
            }
            Err(e) => return Err(e),
        }
        sync_dir(&self.dir)?;
        let new_key = Key::generate();
        let new_id = local_id(&new_key);
        let tmp = self.dir.join("root-key.new");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path: tmp, source }),
        }
        write_new(&tmp, &key_text(&new_key))?;
        let path = self.dir.join(ROOT_KEY_FILE);
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        sync_dir(&self.dir)?;
        self.reload()?;
        Ok((lock, old_id, new_id))
    }

    /// Deletes the retired key files whose ids are not in `in_use` (the root key ids that
    /// stored workspace keys still name); returns the ids removed.
    pub fn retire_unused(&self, in_use: &[String]) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        for id in self.retired_ids() {
            if in_use.contains(&id) {
                continue;
            }
            let path = retired_path(&self.dir, &id);
            std::fs::remove_file(&path).map_err(|source| Error::Io { path, source })?;
            removed.push(id);
        }
        sync_dir(&self.dir)?;
        self.reload()?;
        Ok(removed)
    }
}

#[async_trait]
impl Keyring for LocalKeyring {
    fn key_id(&self) -> String {
        self.current().0
    }

    async fn wrap(&self, ws: WorkspaceId, key: &Key) -> Result<WrappedKey, Error> {
        // Wraps are rare (one per workspace, and at rotation): read the file again, so a
        // rotation by another process is never wrapped around with its retired key.
        self.reload()?;
        let (id, root) = self.current();
        let root = root.ok_or_else(|| Error::UnknownRootKey(id.clone()))?;
        wrap_with(&root, &id, ws, key)
    }

    async fn unwrap(&self, ws: WorkspaceId, wrapped: &WrappedKey) -> Result<Key, Error> {
        let root = match self.get(&wrapped.root_key_id) {
            Some(k) => k,
            None => {
                // Another process may have rotated since we loaded.
                self.reload()?;
                self.get(&wrapped.root_key_id)
                    .ok_or_else(|| Error::UnknownRootKey(wrapped.root_key_id.clone()))?
            }
        };
        unwrap_with(&root, ws, wrapped)
    }
}

/// Held while a rotation runs: the file `root-key.rotating`, removed on drop. A second
/// rotation refuses to start while it exists.
#[derive(Debug)]
pub struct RotationLock {
    path: PathBuf,
}

impl RotationLock {
    fn take(dir: &Path) -> Result<RotationLock, Error> {
        let path = dir.join(ROTATION_LOCK);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                Ok(RotationLock { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::RotationRunning { path })
            }
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

impl Drop for RotationLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates `path` (mode 0600; it must not exist) holding `text`, synced to disk.
fn write_new(path: &Path, text: &SecretString) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.expose_secret().as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn creates_a_0600_key_on_first_open_and_reuses_it() {
        let d = dir();
        let k = LocalKeyring::open(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(d.path().join(ROOT_KEY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600));
        let again = LocalKeyring::open(d.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.key_id(), again.key_id());
        assert!(k.key_id().starts_with("local-"));
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let d = dir();
        drop(LocalKeyring::open(d.path()));
        let path = d.path().join(ROOT_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = LocalKeyring::open(d.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("readable by other users"), "{err}");
    }

    #[test]
    fn refuses_a_malformed_key_file() {
        let d = dir();
        write_new(&d.path().join(ROOT_KEY_FILE), &SecretString::from("abc"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            LocalKeyring::open(d.path()),
            Err(Error::KeyFile { .. })
        ));
    }

    #[tokio::test]
    async fn wraps_bind_the_workspace_and_the_root_key_id() {
        let d = dir();
        let k = LocalKeyring::open(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let ws = WorkspaceId::new();
        let key = Key::generate();
        let wrapped = k.wrap(ws, &key).await.unwrap_or_else(|e| panic!("{e}"));
        let back = k
            .unwrap(ws, &wrapped)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.bytes(), key.bytes());
        assert!(matches!(
            k.unwrap(WorkspaceId::new(), &wrapped).await,
            Err(Error::Decrypt)
        ));
        let relabelled = WrappedKey {
            root_key_id: "local-0000000000000000".into(),
            ..wrapped.clone()
        };
        assert!(matches!(
            k.unwrap(ws, &relabelled).await,
            Err(Error::UnknownRootKey(_))
        ));
    }

    #[tokio::test]
    async fn rotation_keeps_old_wraps_unwrappable_until_retired() {
        let d = dir();
        let k = LocalKeyring::open(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let ws = WorkspaceId::new();
        let key = Key::generate();
        let old = k.wrap(ws, &key).await.unwrap_or_else(|e| panic!("{e}"));
        let (lock, old_id, new_id) = k.rotate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.root_key_id, old_id);
        assert_ne!(old_id, new_id);
        assert_eq!(k.key_id(), new_id);
        // A second rotation cannot start meanwhile.
        assert!(matches!(k.rotate(), Err(Error::RotationRunning { .. })));
        // Another process opening the directory sees both keys.
        let other = LocalKeyring::open(d.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.retired_ids(), vec![old_id.clone()]);
        assert!(other.unwrap(ws, &old).await.is_ok());
        let new = k.wrap(ws, &key).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(new.root_key_id, new_id);
        // Still in use: kept.
        assert!(k
            .retire_unused(std::slice::from_ref(&old_id))
            .map(|r| r.is_empty())
            .unwrap_or(false));
        assert_eq!(
            k.retire_unused(std::slice::from_ref(&new_id)).ok(),
            Some(vec![old_id.clone()])
        );
        drop(lock);
        assert!(!retired_path(d.path(), &old_id).exists());
        assert!(matches!(
            k.unwrap(ws, &old).await,
            Err(Error::UnknownRootKey(_))
        ));
        assert!(k.unwrap(ws, &new).await.is_ok());
        // A process that loaded before the rotation finds the new key on its own.
        assert!(other.unwrap(ws, &new).await.is_ok());
    }
}
