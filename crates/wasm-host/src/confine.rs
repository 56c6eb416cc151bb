//! Confinement of an executor worker process (Linux): what code that escaped wasmtime inside a
//! worker could still do. The worker starts with an empty environment (see `WorkerPool`); this
//! takes the rest away, irreversibly, before the worker reads its first frame:
//!
//! - **rlimits**: no core dumps (`RLIMIT_CORE` 0, so a crash leaves no memory image holding a
//!   run's secrets on disk), at most [`MAX_OPEN_FILES`] descriptors. `RLIMIT_NPROC` is left
//!   alone on purpose: it counts every process and thread of the *user*, so with the server
//!   (and anything else) running as the same user a bound low enough to matter would make
//!   the worker's own thread creation fail at random. Its job is done by the seccomp filter
//!   instead: `clone` is allowed only with `CLONE_THREAD` (a thread, never a process), and
//!   `fork`, `vfork` and `execve` are not allowed at all.
//! - **no_new_privs**: nothing the worker runs may gain privileges (setuid files, file caps).
//! - **Landlock** (best effort: logged, never fatal, when the kernel lacks it or part of it):
//!   the filesystem is read-write only in the compiled-artifact cache and the scratch root,
//!   read-only in the few system paths of [`READ_ONLY_PATHS`], and nothing else — so the rest
//!   of the data directory (the root key, the database, the internal token) is unreadable.
//!   Where the kernel has them, TCP bind/connect are denied outright, and so are signals and
//!   abstract UNIX sockets reaching outside the worker.
//! - **seccomp** (mandatory): an allow-list of the system calls wasmtime (pooling allocator,
//!   epoch interruption, signal-based traps), tokio, cap-std and the worker make, in one
//!   table ([`ALLOWED`], a comment per group); any other call kills the process. The table was derived with
//!   `strace -f -c` on a worker running every example and hostile flow, and trimmed to what
//!   the worker's code paths need.
//!
//! It must be applied while the process has a single thread (`worker::serve_confined` does,
//! before it builds the async runtime): seccomp is synchronised to every thread, but Landlock
//! (before ABI 8) restricts only the calling thread and the threads it creates afterwards.
//! There is no switch to turn this off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use rustix::process::{Resource, Rlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::HostConfig;

/// The most file descriptors a worker may hold (soft and hard limit, or the inherited hard
/// limit if that is lower). A flow's open files are the worker's, so this also bounds what
/// one flow can take from the others in its worker.
pub const MAX_OPEN_FILES: u64 = 4096;

/// System paths the worker may read (never write): what the Rust runtime and tokio look at to
/// size themselves. A missing one is skipped.
const READ_ONLY_PATHS: &[&str] = &[
    // `std::thread::available_parallelism` (tokio's thread count) reads the process's cgroup
    // and its CPU quota; `/proc/self` resolves to this process's own directory only.
    "/proc/self",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
    // Entropy if `getrandom(2)` is missing, and the usual sink.
    "/dev/urandom",
    "/dev/null",
];

/// The Landlock ABI whose rights are asked for; a kernel with less gets what it has.
const LANDLOCK_ABI: ABI = ABI::V6;

/// How the confinement went (for the log line and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    /// Whether Landlock is enforced: fully, partially (an older kernel's subset), or not at
    /// all (no Landlock in this kernel).
    pub landlock: LandlockStatus,
}

/// How much of the Landlock ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockStatus {
    Full,
    Partial,
    Unsupported,
}

/// The worker could not be confined.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting the {0} limit")]
    Rlimit(&'static str, #[source] std::io::Error),
    #[error("setting no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("opening {path} for the Landlock ruleset")]
    LandlockPath {
        path: PathBuf,
        #[source]
        source: landlock::PathFdError,
    },
    #[error("building or enforcing the Landlock ruleset")]
    Landlock(#[source] landlock::RulesetError),
    #[error("no seccomp filter is defined for the {0} architecture")]
    Arch(&'static str),
    #[error("building the seccomp filter")]
    SeccompBuild(#[source] seccompiler::BackendError),
    #[error("installing the seccomp filter")]
    Seccomp(#[source] seccompiler::Error),
}

/// Confines this process for a worker serving `config` (its cache directory and scratch root
/// must exist). Irreversible. Call it while the process has one thread.
pub fn apply(config: &HostConfig) -> Result<Confined, Error> {
    limit_resources()?;
    rustix::thread::set_no_new_privs(true).map_err(|e| Error::NoNewPrivs(e.into()))?;
    let landlock = restrict_filesystem(&config.cache_dir, &config.scratch_root)?;
    install_seccomp()?;
    Ok(Confined { landlock })
}

fn limit_resources() -> Result<(), Error> {
    let set = |name, resource, limit: u64| {
        rustix::process::setrlimit(
            resource,
            Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            },
        )
        .map_err(|e| Error::Rlimit(name, e.into()))
    };
    set("core-dump", Resource::Core, 0)?;
    // Never above the inherited hard limit: raising it needs a privilege the worker must not
    // rely on.
    let hard = rustix::process::getrlimit(Resource::Nofile).maximum;
    let files = hard.map_or(MAX_OPEN_FILES, |h| h.min(MAX_OPEN_FILES));
    set("open-files", Resource::Nofile, files)
}

fn restrict_filesystem(cache_dir: &Path, scratch_root: &Path) -> Result<LandlockStatus, Error> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    // Everything but running programs (there is no execve anyway).
    let read_write = AccessFs::from_all(LANDLOCK_ABI) & !AccessFs::Execute;
    let beneath = |path: &Path, access: BitFlags<AccessFs>| {
        PathFd::new(path)
            .map(|fd| PathBeneath::new(fd, access))
            .map_err(|source| Error::LandlockPath {
                path: path.to_owned(),
                source,
            })
    };
    let mut rules = vec![
        beneath(cache_dir, read_write)?,
        beneath(scratch_root, read_write)?,
    ];
    for path in READ_ONLY_PATHS.iter().map(Path::new) {
        if path.exists() {
            rules.push(beneath(path, read)?);
        }
    }
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
        .and_then(|r| r.scope(Scope::AbstractUnixSocket | Scope::Signal))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>)))
        .and_then(|r| r.restrict_self())
        .map_err(Error::Landlock)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::Full,
        RulesetStatus::PartiallyEnforced => LandlockStatus::Partial,
        RulesetStatus::NotEnforced => LandlockStatus::Unsupported,
    })
}

/// Every system call a confined worker may make, unconditionally. A few more are allowed only
/// with certain arguments ([`conditional_rules`]), and `clone3` is answered `ENOSYS`
/// ([`install_seccomp`]). Anything else kills the process.
///
/// Derived by `strace -f -c` of a worker (the `sandbox` tests' `confine` child) running the
/// example flows of the three kinds and every hostile flow, less what happens before
/// confinement (exec, loader, Landlock), plus what a flow can reach through WASI without
/// the test flows doing it (a file's times, size, hints; links; syncing data): a legitimate
/// WASI call must never kill a worker and the other runs on it.
const ALLOWED: &[i64] = &[
    // Memory: the allocator (mremap: glibc's realloc of large blocks), wasmtime's pooling
    // allocator (reserve, commit, decommit by madvise), compiled code mapped from the cache
    // and made executable, memory images (memfd), thread stacks.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_memfd_create,
    // Threads: tokio's workers and blocking pool, the epoch ticker, Cranelift's compile
    // threads (clone itself is conditional).
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // Time: sleeping (the epoch ticker, WASI sleeps), clocks when the vDSO does not answer.
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    // Signals: wasmtime's trap handlers (SIGSEGV, SIGILL, SIGFPE, SIGBUS) on an alternate
    // stack per thread, and returning from them.
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    // The event loop: tokio's epoll and its wake-up eventfd (the socket pair of its signal
    // driver is conditional).
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    // Descriptors: the protocol on stdin/stdout, logs on stderr, files in the cache and in
    // scratch directories (a flow's own reads and writes of /run among them).
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_ftruncate,
    libc::SYS_fadvise64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    // Paths: cap-std's confined lookups (openat2 with RESOLVE_BENEATH), the cache's
    // write-then-rename, scratch directories made, measured and removed, a flow's /run
    // (WASI's stat, readdir, mkdir, unlink, rename, link, symlink, readlink, set-times).
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_getdents64,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_readlinkat,
    libc::SYS_utimensat,
    // Relative paths (a data directory given as `./ferry-data`) are made absolute against
    // the working directory: its name only, no access.
    libc::SYS_getcwd,
    // Randomness: hash maps, WASI random.
    libc::SYS_getrandom,
    // abort(3) names its own process before signalling it (see tgkill).
    libc::SYS_getpid,
];

/// The same on x86-64, where glibc, std and rustix still use these older forms.
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[i64] = &[
    libc::SYS_mkdir,
    libc::SYS_chmod,
    libc::SYS_unlink,
    libc::SYS_renameat,
    libc::SYS_epoll_wait,
];
/// The same on aarch64 (which has only the `*at` forms), and the icache flush wasmtime
/// makes after writing code. Not measured like the x86-64 table: derived from it.
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[i64] = &[libc::SYS_fchmodat, libc::SYS_membarrier];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ARCH: &[i64] = &[];

fn arch() -> Result<TargetArch, Error> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| Error::Arch(std::env::consts::ARCH))
}

/// A rule matching when argument `arg` (its low 32 bits if `int`) compares with `value`.
fn when(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, Error> {
    SeccompCondition::new(arg, len, op, value)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(Error::SeccompBuild)
}

/// The calls allowed only with certain arguments.
fn conditional_rules() -> Result<Vec<(i64, Vec<SeccompRule>)>, Error> {
    use SeccompCmpArgLen::{Dword, Qword};
    let thread = libc::CLONE_THREAD as u64;
    // Naming threads (std, tokio) and reading the name back; no other prctl option.
    let prctl = [libc::PR_SET_NAME, libc::PR_GET_NAME]
        .into_iter()
        .map(|op| when(0, Dword, SeccompCmpOp::Eq, op as u64))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        // Threads, never processes: the flags must include CLONE_THREAD.
        (
            libc::SYS_clone,
            vec![when(0, Qword, SeccompCmpOp::MaskedEq(thread), thread)?],
        ),
        (libc::SYS_prctl, prctl),
        // Signals to this process only (abort raises SIGABRT this way, so a crash reads as
        // one rather than as a seccomp kill).
        (
            libc::SYS_tgkill,
            vec![when(
                0,
                Dword,
                SeccompCmpOp::Eq,
                u64::from(std::process::id()),
            )?],
        ),
        // Reading limits (the Rust runtime does), never changing them: no new limit given.
        (
            libc::SYS_prlimit64,
            vec![when(2, Qword, SeccompCmpOp::Eq, 0)?],
        ),
        // tokio's signal driver makes one anonymous UNIX socket pair when its runtime
        // starts; a pair reaches nothing outside the process. No other socket call is
        // allowed.
        (
            libc::SYS_socketpair,
            vec![when(0, Dword, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?],
        ),
    ])
}

/// The allow-list filter: anything not matched kills the process.
fn allow_list() -> Result<BpfProgram, Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in ALLOWED.iter().chain(ALLOWED_ARCH) {
        rules.insert(*call, Vec::new());
    }
    // clone3 passes its flags in memory, where a filter cannot look: it is answered ENOSYS by
    // the first filter (glibc then falls back to clone). Allowed here so that answer stands.
    rules.insert(libc::SYS_clone3, Vec::new());
    for (call, conditions) in conditional_rules()? {
        rules.insert(call, conditions);
    }
    SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch()?,
    )
    .and_then(BpfProgram::try_from)
    .map_err(Error::SeccompBuild)
}

/// The filter that answers `clone3` with ENOSYS and lets everything else through to the
/// allow-list.
fn clone3_enosys() -> Result<BpfProgram, Error> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .and_then(BpfProgram::try_from)
    .map_err(Error::SeccompBuild)
}

/// Installs both filters on every thread. The kernel runs every installed filter and takes
/// the strictest answer, so `clone3` gets ENOSYS and anything outside the allow-list kills.
fn install_seccomp() -> Result<(), Error> {
    let enosys = clone3_enosys()?;
    let allow = allow_list()?;
    seccompiler::apply_filter_all_threads(&enosys).map_err(Error::Seccomp)?;
    seccompiler::apply_filter_all_threads(&allow).map_err(Error::Seccomp)
}
