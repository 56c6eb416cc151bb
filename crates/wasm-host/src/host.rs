//! [`Host`]: the engines, the compiled-artifact cache and the run slots, behind a cheap
//! clone handle; inspecting and preparing (compiling once per digest) artifacts.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::cache::{self, DiskCache, Loaded, Lru};
use crate::config::HostConfig;
use crate::engine::{Flavor, Ticker};
use crate::flow_host::{ComponentState, FlowPre, ModuleState};
use crate::inspect::{self, ArtifactError};
use crate::{ArtifactInfo, ArtifactKind};

/// A compiled artifact ready to instantiate, of one of the three kinds.
pub(crate) enum Ready {
    Flow(FlowPre<ComponentState>),
    Command(CommandPre<ComponentState>),
    Preview1(wasmtime::InstancePre<ModuleState>),
}

/// An artifact compiled for one engine (plain, or fuel-metered) and ready to run: a run
/// start is an instantiation. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    info: ArtifactInfo,
    metered: bool,
    ready: Arc<Ready>,
}

impl Prepared {
    pub fn info(&self) -> &ArtifactInfo {
        &self.info
    }

    /// Whether this was compiled for the fuel-metered engine (needed by runs with a CPU
    /// limit, `cpu_fuel_m`).
    pub fn metered(&self) -> bool {
        self.metered
    }

    pub(crate) fn ready(&self) -> &Ready {
        &self.ready
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("info", &self.info)
            .field("metered", &self.metered)
            .finish_non_exhaustive()
    }
}

/// Why a [`Host`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("the wasmtime engine could not be created: {0}")]
    Engine(String),
    #[error("the artifact cache directory {path} could not be opened")]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the epoch ticker thread could not be started")]
    Ticker(#[source] std::io::Error),
}

pub(crate) struct Inner {
    pub(crate) config: HostConfig,
    plain: Flavor,
    metered: Flavor,
    /// Engine compatibility hashes, plain and metered: part of every cache file name.
    engine_hashes: [String; 2],
    pooling: bool,
    disk: DiskCache,
    memory: Mutex<Lru<(String, bool), Prepared>>,
    compiles: AtomicU64,
    compile_slots: Arc<Semaphore>,
    pub(crate) run_slots: Semaphore,
    _ticker: Ticker,
}

impl Inner {
    pub(crate) fn flavor(&self, metered: bool) -> &Flavor {
        if metered {
            &self.metered
        } else {
            &self.plain
        }
    }

    fn engine_hash(&self, metered: bool) -> &str {
        &self.engine_hashes[usize::from(metered)]
    }
}

/// The sandbox host: a cheap clone handle to the engines, caches and run slots.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("cache_dir", &self.inner.config.cache_dir)
            .field("pooling", &self.inner.pooling)
            .finish_non_exhaustive()
    }
}

fn flavor_tag(metered: bool) -> &'static str {
    if metered {
        "fuel"
    } else {
        "plain"
    }
}

fn join_error(e: tokio::task::JoinError) -> ArtifactError {
    ArtifactError::Cache(format!("a blocking task failed: {e}"))
}

impl Host {
    /// Creates the engines (pooled where possible), opens the cache directory and starts the
    /// epoch ticker.
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let engine_error = |e: wasmtime::Error| HostError::Engine(format!("{e:#}"));
        let (plain, plain_pooled) = Flavor::new(&config, false).map_err(engine_error)?;
        let (metered, metered_pooled) = Flavor::new(&config, true).map_err(engine_error)?;
        let disk = DiskCache::open(&config.cache_dir).map_err(|source| HostError::CacheDir {
            path: config.cache_dir.clone(),
            source,
        })?;
        let ticker = Ticker::start(
            vec![plain.engine.clone(), metered.engine.clone()],
            config.epoch_tick,
        )
        .map_err(HostError::Ticker)?;
        let engine_hashes = [
            cache::engine_hash(&plain.engine),
            cache::engine_hash(&metered.engine),
        ];
        tracing::info!(
            pooling = plain_pooled && metered_pooled,
            cache_dir = %config.cache_dir.display(),
            "Sandbox host started"
        );
        Ok(Host {
            inner: Arc::new(Inner {
                memory: Mutex::new(Lru::new(config.instance_cache_entries)),
                compile_slots: Arc::new(Semaphore::new(config.max_concurrent_compiles.max(1))),
                run_slots: Semaphore::new(config.max_concurrent_instances.max(1) as usize),
                pooling: plain_pooled && metered_pooled,
                compiles: AtomicU64::new(0),
                engine_hashes,
                disk,
                plain,
                metered,
                config,
                _ticker: ticker,
            }),
        })
    }

    /// Whether instances come from the pooling allocator (false after a fallback).
    pub fn is_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// How many compilations this host has run (each is a cache miss).
    pub fn compile_count(&self) -> u64 {
        self.inner.compiles.load(Ordering::Relaxed)
    }

    /// Where the compiled form of `digest` for the plain or metered engine is cached, or
    /// `None` if `digest` is not a `sha256:<hex>` digest.
    pub fn compiled_path(&self, digest: &str, metered: bool) -> Option<PathBuf> {
        let hex = cache::digest_hex(digest)?;
        Some(self.inner.disk.compiled_path(
            hex,
            flavor_tag(metered),
            self.inner.engine_hash(metered),
        ))
    }

    /// Checks an artifact without compiling it: its size, that it is WebAssembly, which kind
    /// of flow it is, and that it imports only what Ferry provides (a component: the
    /// `ferry:flow/host` interface and WASI 0.2; a core module: `wasi_snapshot_preview1`).
    /// CPU work proportional to its size: from async code, call it on a blocking thread (or
    /// use [`Host::prepare`], which does).
    pub fn inspect(&self, bytes: &[u8]) -> Result<ArtifactInfo, ArtifactError> {
        inspect::inspect(bytes, self.inner.config.max_artifact_bytes)
    }

    /// Inspects and compiles an artifact for the plain engine, or the fuel-metered one when
    /// `metered` (runs with a CPU limit need that), unless it is cached: compiled once per
    /// digest and engine, off the async runtime, bounded in time and output size, and stored
    /// in the cache directory.
    pub async fn prepare(&self, bytes: &[u8], metered: bool) -> Result<Prepared, ArtifactError> {
        let config = &self.inner.config;
        let max = config.max_artifact_bytes;
        if bytes.len() as u64 > max {
            return Err(ArtifactError::TooLarge {
                size: bytes.len() as u64,
                max,
            });
        }
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let info = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || inspect::inspect(&bytes, max))
                .await
                .map_err(join_error)??
        };
        if let Some(prepared) = self.lookup_known(&info, metered).await {
            return Ok(prepared);
        }
        let slot = self
            .inner
            .compile_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ArtifactError::Cache("the host is shutting down".to_owned()))?;
        // Someone else may have compiled it while this waited for the slot.
        if let Some(prepared) = self.lookup_known(&info, metered).await {
            return Ok(prepared);
        }
        self.inner.compiles.fetch_add(1, Ordering::Relaxed);
        let engine = self.inner.flavor(metered).engine.clone();
        let kind = info.kind;
        let compile = tokio::task::spawn_blocking(move || {
            // The slot goes with the compilation: one that outlives its timeout still counts
            // against the concurrency limit until it really ends.
            let _slot = slot;
            match kind {
                ArtifactKind::Component | ArtifactKind::Command => {
                    engine.precompile_component(&bytes)
                }
                ArtifactKind::Preview1 => engine.precompile_module(&bytes),
            }
        });
        let compiled = match tokio::time::timeout(config.compile_timeout, compile).await {
            Err(_) => return Err(ArtifactError::CompileTimeout(config.compile_timeout)),
            Ok(joined) => joined
                .map_err(join_error)?
                .map_err(|e| ArtifactError::Invalid(format!("{e:#}")))?,
        };
        if compiled.len() as u64 > config.max_compiled_bytes {
            return Err(ArtifactError::CompiledTooLarge {
                size: compiled.len() as u64,
                max: config.max_compiled_bytes,
            });
        }
        let hex = cache::digest_hex(&info.digest)
            .ok_or_else(|| ArtifactError::Cache("a digest is malformed".to_owned()))?
            .to_owned();
        let disk = self.inner.disk.clone();
        let engine = self.inner.flavor(metered).engine.clone();
        let path = disk.compiled_path(&hex, flavor_tag(metered), self.inner.engine_hash(metered));
        let size = info.size;
        let loaded = tokio::task::spawn_blocking(move || {
            disk.store(&hex, kind, size, &path, &compiled)
                .map_err(|e| ArtifactError::Cache(format!("storing {}: {e}", path.display())))?;
            cache::load(&engine, kind, &path)
                .map_err(|e| ArtifactError::Cache(format!("loading {}: {e:#}", path.display())))
        })
        .await
        .map_err(join_error)??;
        let prepared = self.instantiate_pre(info, metered, loaded)?;
        self.remember(&prepared);
        tracing::info!(digest = %prepared.info.digest, kind = prepared.info.kind.as_str(), metered, "Artifact compiled");
        Ok(prepared)
    }

    /// A prepared artifact from the memory or disk cache, without its bytes; `None` if it
    /// was never prepared for this engine (or its cache entry is unusable).
    pub async fn lookup(&self, digest: &str, metered: bool) -> Option<Prepared> {
        let hex = cache::digest_hex(digest)?;
        if let Some(p) = self.remembered(digest, metered) {
            return Some(p);
        }
        let disk = self.inner.disk.clone();
        let hex_owned = hex.to_owned();
        let (kind, size) = tokio::task::spawn_blocking(move || disk.info(&hex_owned))
            .await
            .ok()??;
        let info = ArtifactInfo {
            digest: digest.to_owned(),
            size,
            kind,
        };
        self.lookup_known(&info, metered).await
    }

    fn remembered(&self, digest: &str, metered: bool) -> Option<Prepared> {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(digest.to_owned(), metered))
    }

    fn remember(&self, prepared: &Prepared) {
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (prepared.info.digest.clone(), prepared.metered),
                prepared.clone(),
            );
    }

    /// The memory cache, then the disk cache, for an artifact whose kind is known.
    async fn lookup_known(&self, info: &ArtifactInfo, metered: bool) -> Option<Prepared> {
        if let Some(p) = self.remembered(&info.digest, metered) {
            return Some(p);
        }
        let path = self.compiled_path(&info.digest, metered)?;
        let engine = self.inner.flavor(metered).engine.clone();
        let kind = info.kind;
        let loaded = tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return None;
            }
            match cache::load(&engine, kind, &path) {
                Ok(loaded) => Some(loaded),
                Err(error) => {
                    // Corrupt or from another build: drop it and compile again.
                    tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "Cached artifact unusable; recompiling");
                    let _ = std::fs::remove_file(&path);
                    None
                }
            }
        })
        .await
        .ok()??;
        match self.instantiate_pre(info.clone(), metered, loaded) {
            Ok(prepared) => {
                self.remember(&prepared);
                Some(prepared)
            }
            Err(error) => {
                tracing::warn!(digest = %info.digest, error = %error, "Cached artifact does not link");
                None
            }
        }
    }

    /// Links compiled code against what Ferry provides, once, so each run only instantiates.
    fn instantiate_pre(
        &self,
        info: ArtifactInfo,
        metered: bool,
        loaded: Loaded,
    ) -> Result<Prepared, ArtifactError> {
        let flavor = self.inner.flavor(metered);
        // A link failure means the artifact imports something (or some function of an
        // interface) that Ferry does not define.
        let unsupported =
            |e: wasmtime::Error| ArtifactError::UnsupportedImports(vec![format!("{e:#}")]);
        let not_a_flow = |e: wasmtime::Error| ArtifactError::NotAFlow(format!("{e:#}"));
        let ready = match (info.kind, loaded) {
            (ArtifactKind::Component, Loaded::Component(c)) => {
                let pre = flavor.components.instantiate_pre(&c).map_err(unsupported)?;
                Ready::Flow(FlowPre::new(pre).map_err(not_a_flow)?)
            }
            (ArtifactKind::Command, Loaded::Component(c)) => {
                let pre = flavor.components.instantiate_pre(&c).map_err(unsupported)?;
                Ready::Command(CommandPre::new(pre).map_err(not_a_flow)?)
            }
            (ArtifactKind::Preview1, Loaded::Module(m)) => {
                Ready::Preview1(flavor.modules.instantiate_pre(&m).map_err(unsupported)?)
            }
            _ => {
                return Err(ArtifactError::Cache(
                    "the cached code is not of the artifact's kind".to_owned(),
                ))
            }
        };
        Ok(Prepared {
            info,
            metered,
            ready: Arc::new(ready),
        })
    }
}
