//! The sandbox host's settings: one explicit struct, with its defaults documented.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of a [`crate::Host`]. [`HostConfig::new`] gives the defaults listed on each field.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled artifacts are cached. Created with mode 0700 if missing; only Ferry may
    /// write here, because loading a cached artifact trusts its contents (see `cache::load`).
    pub cache_dir: PathBuf,
    /// Where per-run scratch directories are created. Default: the system's temp directory.
    pub scratch_root: PathBuf,
    /// Largest artifact accepted. Default 50 MiB.
    pub max_artifact_bytes: u64,
    /// Largest compiled artifact kept; a bigger one is refused. Default 256 MiB.
    pub max_compiled_bytes: u64,
    /// How long one compilation may take. The compiler cannot be interrupted: past this the
    /// caller gets an error at once and the compilation finishes (and is discarded) on its
    /// blocking thread, still holding its compile slot. Default 60 s.
    pub compile_timeout: Duration,
    /// Compilations at once (each also uses Cranelift's own threads). Default 1.
    pub max_concurrent_compiles: usize,
    /// Use the pooling allocator (falls back to on-demand allocation, with a warning, where
    /// the pool cannot be reserved). Default true.
    pub pooling: bool,
    /// Runs at once in this host; further runs wait for a slot. Sizes the pool. Default 32.
    pub max_concurrent_instances: u32,
    /// The largest `memory_mb` any run may get, which sizes the pool's memory slots.
    /// Default 4096 (the most `PoolLimits` allows).
    pub max_memory_mb: u32,
    /// Stack the wasm code of one run may use. Default 1 MiB.
    pub max_wasm_stack: usize,
    /// How often the epoch ticker ticks: the granularity of deadlines and cancellation for a
    /// flow that is computing, and how often a computing flow yields to the async runtime.
    /// Default 1 ms.
    pub epoch_tick: Duration,
    /// Prepared artifacts (instance templates) kept in memory, least recently used evicted.
    /// Default 64.
    pub instance_cache_entries: usize,
    /// Largest result a flow may return (kind 1) or write to `/run/result.json` (kinds 2, 3).
    /// Default 1 MiB.
    pub max_result_bytes: usize,
    /// A stdout/stderr line longer than this is split. Default 16 KiB.
    pub max_line_bytes: usize,
    /// How often the scratch directory's size is checked while a flow runs. Default 50 ms.
    pub scratch_check_interval: Duration,
    /// Files and directories a scratch directory may hold. Default 10 000.
    pub max_scratch_entries: u64,
    /// WASI resources (open files, streams, pollables) a run may hold at once. Default 4096.
    pub max_resources: usize,
    /// Bounds on the `ferry:flow/host` calls of one run.
    pub host_calls: HostCallLimits,
}

/// Bounds on the host calls of one run: past a count a call is ignored (logging, progress) or
/// answers `none` (secrets), and the run's log says so once.
#[derive(Debug, Clone, Copy)]
pub struct HostCallLimits {
    /// A structured log message longer than this is cut. Default 16 KiB.
    pub max_log_message_bytes: usize,
    /// Structured log calls per run. Default 100 000.
    pub max_log_calls: u64,
    /// Secret lookups per run. Default 1 000.
    pub max_secret_lookups: u64,
    /// Progress reports per run. Default 10 000.
    pub max_progress_calls: u64,
}

impl Default for HostCallLimits {
    fn default() -> Self {
        Self {
            max_log_message_bytes: 16 * 1024,
            max_log_calls: 100_000,
            max_secret_lookups: 1_000,
            max_progress_calls: 10_000,
        }
    }
}

impl HostConfig {
    /// The defaults, caching compiled artifacts in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            scratch_root: std::env::temp_dir(),
            max_artifact_bytes: 50 * 1024 * 1024,
            max_compiled_bytes: 256 * 1024 * 1024,
            compile_timeout: Duration::from_secs(60),
            max_concurrent_compiles: 1,
            pooling: true,
            max_concurrent_instances: 32,
            max_memory_mb: 4096,
            max_wasm_stack: 1024 * 1024,
            epoch_tick: Duration::from_millis(1),
            instance_cache_entries: 64,
            max_result_bytes: 1024 * 1024,
            max_line_bytes: 16 * 1024,
            scratch_check_interval: Duration::from_millis(50),
            max_scratch_entries: 10_000,
            max_resources: 4096,
            host_calls: HostCallLimits::default(),
        }
    }
}
