//! The architecture invariants that the dependency graph can check (ARCHITECTURE.md), read
//! from `cargo metadata`: only ferry-store speaks SQL (sqlx), only ferry-wasm-host links
//! wasmtime and the sandboxing crates, only the push crates and ferry-kms (for the root key)
//! link a cloud SDK, ferry-core pulls in no runtime or I/O, and ferry-engine compiles neither
//! wasmtime nor a cloud SDK, even indirectly. Test and dev dependencies are not counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// Who may depend (normally, not for tests) on crates whose name starts with each prefix.
const ONLY: &[(&str, &[&str])] = &[
    ("sqlx", &["ferry-store"]),
    ("wasmtime", &["ferry-wasm-host"]),
    ("seccompiler", &["ferry-wasm-host"]),
    ("landlock", &["ferry-wasm-host"]),
    ("aws-sdk-", &["ferry-push-aws", "ferry-kms"]),
    ("aws-config", &["ferry-push-aws", "ferry-kms"]),
    ("google-cloud-", &["ferry-push-gcp", "ferry-kms"]),
];

fn metadata() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(root)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each workspace member's normal (non-test) direct dependencies: name -> optional.
fn direct(meta: &Value) -> BTreeMap<String, Vec<(String, bool)>> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_owned(),
                        d["optional"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn heavy_dependencies_stay_in_their_crates() {
    let meta = metadata();
    let mut broken = Vec::new();
    for (package, deps) in direct(&meta) {
        for (dep, _) in &deps {
            for (prefix, allowed) in ONLY {
                if dep.starts_with(prefix) && !allowed.contains(&package.as_str()) {
                    broken.push(format!("{package} depends on {dep} (only {allowed:?} may)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn ferry_core_has_no_runtime_and_no_io() {
    let meta = metadata();
    let core = &direct(&meta)["ferry-core"];
    for (dep, optional) in core {
        let runtime = ["tokio", "reqwest", "hyper", "sqlx", "axum", "mio"].contains(&dep.as_str());
        // tokio is allowed only behind the `testing` feature (the port fakes).
        assert!(
            !runtime || (dep == "tokio" && *optional),
            "ferry-core depends on {dep}"
        );
    }
    // No I/O in its source either, outside the test fakes.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "testing.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Parsing addresses (`std::net::IpAddr`) is not I/O; sockets are.
        for io in [
            "std::fs",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "ToSocketAddrs",
            "std::process",
            "tokio::",
            "std::env::",
        ] {
            assert!(!text.contains(io), "{} uses {io}", path.display());
        }
    }
}

#[test]
fn the_engine_compiles_neither_wasmtime_nor_a_cloud_sdk() {
    let meta = metadata();
    // Walk the resolved graph from ferry-engine along normal dependencies only.
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let engine = nodes
        .keys()
        .find(|id| id.contains("/crates/engine#") || id.contains("ferry-engine"))
        .copied()
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut todo = vec![engine];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let names: Vec<&str> = seen
        .iter()
        .filter_map(|id| {
            meta["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == *id)
                .and_then(|p| p["name"].as_str())
        })
        .collect();
    for name in &names {
        assert!(
            !name.starts_with("wasmtime")
                && !name.starts_with("aws-sdk-")
                && !name.starts_with("google-cloud-"),
            "ferry-engine compiles {name}"
        );
    }
    // Positive control: the walk does reach the engine's own dependencies.
    assert!(
        names.contains(&"ferry-store") && names.contains(&"sqlx"),
        "{names:?}"
    );
}
