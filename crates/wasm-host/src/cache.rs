//! The compiled-artifact cache: on disk, one directory per digest holding the artifact's
//! kind and size and one compiled file per engine; in memory, a small LRU of prepared
//! instance templates.
//!
//! Layout: `<cache_dir>/<hex digest>/info` and `<cache_dir>/<hex digest>/<flavor>-<engine
//! hash>.cwasm`, where the engine hash is derived from `Engine::precompile_compatibility_hash`
//! (so a wasmtime upgrade or a configuration change misses instead of loading stale code).
//! Every file is written to a temporary name in the same directory and renamed into place,
//! so a reader sees a whole file or none.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::ArtifactKind;

/// A short, stable hex rendering of the engine's compatibility hash.
pub(crate) fn engine_hash(engine: &Engine) -> String {
    /// Feeds `Hash` output into SHA-256: unlike `DefaultHasher`, stable across Rust releases.
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = hex::encode(h.0.finalize());
    digest[..16].to_owned()
}

/// The hex part of a `sha256:<64 hex>` digest, or `None` if it is not one (which also keeps
/// any other string from becoming a path).
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// Opens (creating, private to this user) the cache directory.
    pub(crate) fn open(dir: &Path) -> std::io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(DiskCache {
            dir: dir.to_owned(),
        })
    }

    pub(crate) fn compiled_path(&self, hex: &str, flavor: &str, engine_hash: &str) -> PathBuf {
        self.dir
            .join(hex)
            .join(format!("{flavor}-{engine_hash}.cwasm"))
    }

    fn info_path(&self, hex: &str) -> PathBuf {
        self.dir.join(hex).join("info")
    }

    /// The kind and size recorded for a digest.
    pub(crate) fn info(&self, hex: &str) -> Option<(ArtifactKind, u64)> {
        let text = std::fs::read_to_string(self.info_path(hex)).ok()?;
        let (kind, size) = text.trim().split_once(' ')?;
        Some((ArtifactKind::parse(kind)?, size.parse().ok()?))
    }

    /// Stores a compiled artifact and its info.
    pub(crate) fn store(
        &self,
        hex: &str,
        kind: ArtifactKind,
        size: u64,
        compiled_path: &Path,
        compiled: &[u8],
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join(hex))?;
        // The info first: the compiled file is what a lookup looks for, so once it is there,
        // the info is too.
        write_atomic(
            &self.info_path(hex),
            format!("{} {size}\n", kind.as_str()).as_bytes(),
        )?;
        write_atomic(compiled_path, compiled)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a cache path has no parent"))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Compiled code, as loaded.
pub(crate) enum Loaded {
    Component(Component),
    Module(Module),
}

/// Loads a compiled artifact that this host wrote.
#[allow(unsafe_code)]
pub(crate) fn load(engine: &Engine, kind: ArtifactKind, path: &Path) -> wasmtime::Result<Loaded> {
    // SAFETY: wasmtime trusts a precompiled file to be what its own `precompile_*` produced
    // (it maps the machine code and runs it). This file was: `Host::prepare` writes it from
    // `Engine::precompile_component`/`precompile_module` of an engine with this configuration
    // (the engine hash in the file name), atomically (temp file + rename), into `cache_dir`,
    // which Ferry creates with mode 0700 and which only Ferry may write (see
    // `HostConfig::cache_dir`). wasmtime also checks the file's header against this engine
    // and refuses a mismatch; a file that fails to load is deleted and recompiled. The file
    // stays mapped while the code is loaded, so it must never be rewritten in place (that
    // would fault the process): Ferry only ever replaces cache files whole, by rename.
    unsafe {
        match kind {
            ArtifactKind::Component | ArtifactKind::Command => {
                Component::deserialize_file(engine, path).map(Loaded::Component)
            }
            ArtifactKind::Preview1 => Module::deserialize_file(engine, path).map(Loaded::Module),
        }
    }
}

/// A least-recently-used map, small enough that eviction may scan it.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = clock;
            v.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
        while self.entries.len() > self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_becoming_paths() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(digest_hex(&format!("sha256:{hex}")), Some(hex));
        assert_eq!(digest_hex(hex), None);
        assert_eq!(digest_hex("sha256:../../etc"), None);
        assert_eq!(digest_hex(&format!("sha256:{}", hex.to_uppercase())), None);
        assert_eq!(digest_hex(&format!("sha256:{hex}0")), None);
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1));
        lru.insert("c", 3);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
    }

    #[test]
    fn info_round_trips_and_writes_are_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let cache = DiskCache::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        let hex = "ab".repeat(32);
        let path = cache.compiled_path(&hex, "plain", "0123");
        cache
            .store(&hex, ArtifactKind::Command, 42, &path, b"code")
            .unwrap_or_else(|e| panic!("store: {e}"));
        assert_eq!(cache.info(&hex), Some((ArtifactKind::Command, 42)));
        assert_eq!(std::fs::read(&path).ok(), Some(b"code".to_vec()));
        assert_eq!(cache.info(&"cd".repeat(32)), None);
    }
}
