//! The per-run scratch directory (`/run` in the guest): its size cap and the result file.
//!
//! How the cap is enforced, and its limits: wasmtime-wasi writes files itself, so there is no
//! hook on each write. Instead a watcher measures the directory every
//! `scratch_check_interval` while the flow runs and stops the flow when it is over
//! `scratch_bytes` (or holds more than `max_scratch_entries` entries), and the directory is
//! measured once more when the flow ends, so a flow that wrote too much never completes.
//! Between two checks a flow can overshoot by what it writes in one interval (at disk speed,
//! tens of MB per 50 ms), and a sparse file counts at its apparent length. A hard bound on
//! disk needs a filesystem quota (a size-limited tmpfs per worker): the worker processes
//! should put `scratch_root` on one.
//!
//! Every access goes through cap-std, relative to the directory: a symlink the flow planted
//! (say `/run/result.json -> /etc/passwd`) is never followed out of it.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cap_std::fs::Dir;

use crate::run::{RunCtl, StopReason};

/// What a scratch directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
}

/// Measures the directory at `root` (apparent sizes; symlinks count as entries, never
/// followed). Stops counting once past `max_entries`.
pub(crate) fn usage(root: &Path, max_entries: u64) -> std::io::Result<Usage> {
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
    let mut usage = Usage::default();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            usage.entries += 1;
            if usage.entries > max_entries {
                return Ok(usage);
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.open_dir()?);
            } else {
                usage.bytes = usage.bytes.saturating_add(meta.len());
            }
        }
    }
    Ok(usage)
}

/// Why the scratch directory is over its cap, or `None` if it is not.
pub(crate) fn over(usage: Usage, max_bytes: u64, max_entries: u64) -> Option<String> {
    if usage.bytes > max_bytes {
        Some(format!(
            "the flow wrote more than its scratch limit of {max_bytes} bytes to /run"
        ))
    } else if usage.entries > max_entries {
        Some(format!(
            "the flow created more than {max_entries} files and directories in /run"
        ))
    } else {
        None
    }
}

/// Watches the scratch directory while the flow runs; stops the run when it is over its cap.
/// Returns when the run is stopped for any reason.
pub(crate) async fn watch(
    root: std::path::PathBuf,
    max_bytes: u64,
    max_entries: u64,
    every: Duration,
    ctl: Arc<RunCtl>,
) {
    loop {
        tokio::select! {
            _ = ctl.stopped() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let root = root.clone();
        let measured = tokio::task::spawn_blocking(move || usage(&root, max_entries)).await;
        match measured {
            Ok(Ok(u)) => {
                if let Some(why) = over(u, max_bytes, max_entries) {
                    ctl.trigger(StopReason::ScratchLimit(why));
                    return;
                }
            }
            // The directory is the host's; failing to measure it is not the flow's fault.
            // The final measurement still applies.
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "Scratch directory not measured");
            }
            Err(error) => {
                tracing::warn!(error = %error, "Scratch measurement task failed");
            }
        }
    }
}

/// What is left to do with a run's scratch directory once the flow has ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finish {
    /// Read `result.json`, up to this many bytes.
    pub(crate) read_result: Option<usize>,
    /// Measure the directory against (bytes, entries).
    pub(crate) check: Option<(u64, u64)>,
}

/// What [`finish`] found.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) result: Option<Result<Option<Vec<u8>>, ResultFileError>>,
    /// Why the directory is over its cap, if it is.
    pub(crate) over: Option<String>,
}

/// A directory with at most this many entries, none a directory, and at most this many bytes
/// is finished on the async thread: a few quick system calls, where a trip to a blocking
/// thread costs far more (over 100 µs on a busy VM). Anything bigger goes to one.
const SMALL_ENTRIES: usize = 16;
const SMALL_BYTES: u64 = 256 * 1024;

/// Whether the directory at `root` is small enough to finish inline (see [`SMALL_ENTRIES`]).
fn is_small(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    let mut bytes = 0;
    for (i, entry) in entries.enumerate() {
        let Ok(entry) = entry else { return false };
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(meta) = entry.metadata() else {
            return false;
        };
        bytes += meta.len();
        if i >= SMALL_ENTRIES || meta.is_dir() || bytes > SMALL_BYTES {
            return false;
        }
    }
    true
}

/// Reads the result, measures and removes a run's scratch directory.
fn finish_now(dir: tempfile::TempDir, finish: Finish) -> Finished {
    let result = finish.read_result.map(|max| read_result(dir.path(), max));
    let over =
        finish.check.and_then(
            |(max_bytes, max_entries)| match usage(dir.path(), max_entries) {
                Ok(u) => over(u, max_bytes, max_entries),
                Err(error) => {
                    tracing::warn!(error = %error, "Scratch directory not measured");
                    None
                }
            },
        );
    if let Err(error) = dir.close() {
        tracing::warn!(error = %error, "Scratch directory not removed");
    }
    Finished { result, over }
}

/// Reads the result, measures and removes a run's scratch directory: inline when it is
/// small (the common case: most flows write little or nothing), else on a blocking thread.
pub(crate) async fn finish(dir: tempfile::TempDir, finish: Finish) -> Result<Finished, String> {
    if is_small(dir.path()) {
        return Ok(finish_now(dir, finish));
    }
    tokio::task::spawn_blocking(move || finish_now(dir, finish))
        .await
        .map_err(|e| format!("finishing the scratch directory failed: {e}"))
}

/// Why `/run/result.json` could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResultFileError {
    #[error("/run/result.json is larger than the result limit of {0} bytes")]
    TooLarge(usize),
    #[error("/run/result.json is not a regular file")]
    NotAFile,
    #[error("/run/result.json could not be read: {0}")]
    Io(#[from] std::io::Error),
}

/// The contents of `result.json` in the scratch directory, `None` if the flow wrote none.
pub(crate) fn read_result(root: &Path, max: usize) -> Result<Option<Vec<u8>>, ResultFileError> {
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
    let file = match dir.open("result.json") {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !file.metadata()?.is_file() {
        return Err(ResultFileError::NotAFile);
    }
    let mut bytes = Vec::new();
    // Read one byte past the limit rather than trust the length: the file may still grow.
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(ResultFileError::TooLarge(max));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn usage_counts_files_in_subdirectories() {
        let d = tmp();
        let sub = d.path().join("a");
        std::fs::create_dir(&sub).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(sub.join("f"), [0u8; 100]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("g"), [0u8; 20]).unwrap_or_else(|e| panic!("{e}"));
        let u = usage(d.path(), 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u,
            Usage {
                bytes: 120,
                entries: 3
            }
        );
        assert!(over(u, 119, 100).is_some());
        assert!(over(u, 120, 100).is_none());
        assert!(over(u, 1000, 2).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn result_file_symlinks_out_are_not_followed() {
        let d = tmp();
        let outside = tmp();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"{\"secret\":1}").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&secret, d.path().join("result.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_result(d.path(), 1000).is_err());
        // Nor does measuring follow it.
        let u = usage(d.path(), 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.entries, 1);
    }

    #[test]
    fn only_small_flat_directories_are_finished_inline() {
        let d = tmp();
        assert!(is_small(d.path()));
        std::fs::write(d.path().join("f"), [0u8; 10]).unwrap_or_else(|e| panic!("{e}"));
        assert!(is_small(d.path()));
        std::fs::create_dir(d.path().join("sub")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_small(d.path()));
        let big = tmp();
        std::fs::write(big.path().join("f"), vec![0u8; SMALL_BYTES as usize + 1])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_small(big.path()));
        let many = tmp();
        for i in 0..=SMALL_ENTRIES {
            std::fs::write(many.path().join(i.to_string()), b"").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(!is_small(many.path()));
    }

    #[test]
    fn result_file_is_bounded() {
        let d = tmp();
        assert!(matches!(read_result(d.path(), 10), Ok(None)));
        std::fs::write(d.path().join("result.json"), b"12345678901")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            read_result(d.path(), 10),
            Err(ResultFileError::TooLarge(10))
        ));
        assert!(matches!(read_result(d.path(), 11), Ok(Some(b)) if b.len() == 11));
    }
}
