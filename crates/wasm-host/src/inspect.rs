//! Artifact inspection: is it WebAssembly, which of the three flow kinds, and does it import
//! only what Ferry provides? A structural check that compiles nothing (compiling validates
//! the rest), so an upload can be refused with a clear reason before any work is spent.

use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

use crate::{ArtifactInfo, ArtifactKind};

/// Why an artifact cannot be run. The first five are the uploader's fault (an API answers
/// 422); the rest are Ferry's (see [`ArtifactError::is_caller_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("the artifact is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("the artifact is not WebAssembly")]
    NotWasm,
    #[error("the artifact is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error("the artifact imports what Ferry does not provide: {}", .0.join(", "))]
    UnsupportedImports(Vec<String>),
    #[error("the artifact is not a flow: {0}")]
    NotAFlow(String),
    #[error("compiling the artifact took longer than {0:?}")]
    CompileTimeout(Duration),
    #[error("the compiled artifact is {size} bytes, over the limit of {max} bytes")]
    CompiledTooLarge { size: u64, max: u64 },
    #[error("the compiled-artifact cache failed: {0}")]
    Cache(String),
}

impl ArtifactError {
    /// Whether the artifact itself is at fault (as opposed to Ferry's limits or machinery).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            ArtifactError::TooLarge { .. }
                | ArtifactError::NotWasm
                | ArtifactError::Invalid(_)
                | ArtifactError::UnsupportedImports(_)
                | ArtifactError::NotAFlow(_)
                | ArtifactError::CompiledTooLarge { .. }
        )
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The WASI 0.2 interfaces `wasmtime_wasi::p2::add_to_linker_async` defines (wasmtime-wasi 48
/// implements wasi@0.2.12; the linker serves any 0.2.x import from it). Kept in step with
/// that function; the linker check at prepare time is the authority, this list gives the
/// uploader every unsupported name at once.
const WASI_P2_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stderr",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:random/random",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];

/// The functions of `wasi_snapshot_preview1` (frozen; all defined by
/// `wasmtime_wasi::p1::add_to_linker_async`).
const WASI_P1_FUNCTIONS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// The export that makes a component a `ferry:flow` flow.
const FLOW_EXPORT: &str = "run";

/// Whether a component may import `name`.
fn component_import_allowed(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    let patch_of = |prefix: &str| {
        version
            .strip_prefix(prefix)
            .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
    };
    if interface == "ferry:flow/host" {
        return patch_of("0.1.");
    }
    WASI_P2_INTERFACES.contains(&interface) && patch_of("0.2.")
}

/// Inspects `bytes` (see [`crate::Host::inspect`]).
pub(crate) fn inspect(bytes: &[u8], max_bytes: u64) -> Result<ArtifactInfo, ArtifactError> {
    let size = bytes.len() as u64;
    if size > max_bytes {
        return Err(ArtifactError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(ArtifactError::NotWasm);
    }
    let kind = classify(bytes)?;
    Ok(ArtifactInfo {
        digest: digest(bytes),
        size,
        kind,
    })
}

/// Reads the top-level imports and exports, checks the imports, and names the kind.
fn classify(bytes: &[u8]) -> Result<ArtifactKind, ArtifactError> {
    let mut encoding = None;
    // Nested modules and components (inside a component) have their own imports and exports,
    // satisfied inside the component: only depth 0 faces the host.
    let mut depth: u32 = 0;
    let mut unsupported = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ArtifactError::Invalid(e.to_string()))?;
        match payload {
            Payload::Version { encoding: e, .. } if depth == 0 => encoding = Some(e),
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ImportSection(reader) if depth == 0 => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| ArtifactError::Invalid(e.to_string()))?;
                    if import.module != "wasi_snapshot_preview1"
                        || !WASI_P1_FUNCTIONS.contains(&import.name)
                    {
                        unsupported.push(format!("{}::{}", import.module, import.name));
                    }
                }
            }
            Payload::ExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| ArtifactError::Invalid(e.to_string()))?;
                    if export.kind == ExternalKind::Func {
                        exports.push(export.name.to_owned());
                    }
                }
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| ArtifactError::Invalid(e.to_string()))?;
                    if !component_import_allowed(import.name.name) {
                        unsupported.push(import.name.name.to_owned());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| ArtifactError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    if !unsupported.is_empty() {
        unsupported.sort();
        unsupported.dedup();
        return Err(ArtifactError::UnsupportedImports(unsupported));
    }
    match encoding {
        Some(Encoding::Component) => {
            if exports.iter().any(|e| e == FLOW_EXPORT) {
                Ok(ArtifactKind::Component)
            } else if exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2.")) {
                Ok(ArtifactKind::Command)
            } else {
                Err(ArtifactError::NotAFlow(
                    "a component must export `run` (the ferry:flow world) or `wasi:cli/run@0.2.x`"
                        .to_owned(),
                ))
            }
        }
        Some(Encoding::Module) => {
            if exports.iter().any(|e| e == "_start") {
                Ok(ArtifactKind::Preview1)
            } else {
                Err(ArtifactError::NotAFlow(
                    "a core module must export `_start` (a WASI preview1 command)".to_owned(),
                ))
            }
        }
        None => Err(ArtifactError::Invalid("no WebAssembly header".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_imports() {
        let cases: &[(&str, bool)] = &[
            ("wasi:cli/stdout@0.2.0", true),
            ("wasi:cli/stdout@0.2.12", true),
            ("wasi:sockets/tcp@0.2.3", true),
            ("ferry:flow/host@0.1.0", true),
            ("ferry:flow/host@0.2.0", false),
            ("wasi:cli/stdout@0.3.0", false),
            ("wasi:cli/stdout", false),
            ("wasi:cli/stdout@0.2.", false),
            ("wasi:cli/stdout@0.2.0-rc", false),
            ("wasi:http/types@0.2.0", false),
            ("wasi:cli/run@0.2.0", false),
            ("run", false),
        ];
        for (name, allowed) in cases {
            assert_eq!(component_import_allowed(name), *allowed, "{name}");
        }
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
