//! Runs a fuzz target's property over its seed corpus, `fuzz/corpus/<target>/`, as an ordinary
//! test: the workspace's test suite includes this file (and the property's) by path, so every
//! seed is checked by `./scripts/test` without libFuzzer or cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The repository's `fuzz/corpus`, found from the crate being built (the fuzz crate itself or
/// a workspace crate whose test includes this file).
fn corpus_root() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .map(|dir| dir.join("fuzz").join("corpus"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no fuzz/corpus above {}", start.display()))
}

/// Calls `property` on every file of `fuzz/corpus/<target>/`, in name order, and fails naming
/// the file whose input broke it. An empty or missing corpus fails too.
pub fn check(target: &str, property: fn(&[u8])) {
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the seed corpus {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading the seed corpus {}: {e}", dir.display()));
    files.retain(|p| p.is_file());
    files.sort();
    assert!(
        !files.is_empty(),
        "the seed corpus {} is empty",
        dir.display()
    );
    let mut broken = Vec::new();
    for file in &files {
        let data = std::fs::read(file)
            .unwrap_or_else(|e| panic!("reading the seed {}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| property(&data))).is_err() {
            broken.push(file.display().to_string());
        }
    }
    assert!(
        broken.is_empty(),
        "the {target} property fails on these seeds (each one's panic is printed above): \
         {broken:#?}"
    );
}

/// The template (first line) and the variables (the rest); blank is null. `None` for input
/// that is not two JSON texts: the parser never sees such input (the API parses JSON first).
// Used by the spec and variable targets; the other files that include this one do not.
#[allow(dead_code)]
pub fn two_json(data: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    let text = std::str::from_utf8(data).ok()?;
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    Some((json(first)?, json(rest)?))
}

#[allow(dead_code)]
fn json(s: &str) -> Option<serde_json::Value> {
    if s.trim().is_empty() {
        Some(serde_json::Value::Null)
    } else {
        serde_json::from_str(s).ok()
    }
}
