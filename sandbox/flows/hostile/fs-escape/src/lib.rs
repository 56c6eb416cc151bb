//! Hostile flow: tries to read, list and write outside its scratch directory (`/run`) — with
//! `..`, absolute paths, and symlinks it creates inside `/run` — and reports what worked. A
//! sandbox that holds reports empty `read`, `listed` and `wrote`, and `inside: true` (it can
//! still use `/run` itself).

use std::fs;

use ferry_flow_sdk::serde_json::{json, Map, Value};

const READS: &[&str] = &[
    "../../etc/passwd",
    "/run/../../etc/passwd",
    "/run/../etc/passwd",
    "/etc/passwd",
    "/proc/self/environ",
    "/run/link-abs",
    "/run/link-rel",
    "/run/link-root/etc/passwd",
    "/run/link-up/etc/passwd",
];

const LISTS: &[&str] = &["/", "/run/..", "/etc", "/run/link-root", "/run/link-up"];

const WRITES: &[&str] = &[
    "/tmp/ferry-escape",
    "/run/../ferry-escape",
    "../ferry-escape",
    "/run/link-up/ferry-escape",
    "/run/link-root/tmp/ferry-escape",
];

/// (target, name of the link inside /run)
const LINKS: &[(&str, &str)] = &[
    ("/etc/passwd", "link-abs"),
    ("../../../../../../etc/passwd", "link-rel"),
    ("/", "link-root"),
    ("..", "link-up"),
];

/// Creates a symlink in /run through WASI directly: the standard library's `symlink_path` is
/// still unstable on wasip2.
fn symlink(target: &str, name: &str) -> Result<(), String> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let (run, _) = dirs
        .iter()
        .find(|(_, path)| path == "/run")
        .ok_or("no /run preopen")?;
    run.symlink_at(target, name).map_err(|e| format!("{e:?}"))
}

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        let mut errors = Map::new();
        let mut links = Map::new();
        for (target, link) in LINKS {
            let outcome = match symlink(target, link) {
                Ok(()) => "created".to_owned(),
                Err(e) => e,
            };
            links.insert((*link).to_owned(), Value::String(outcome));
        }
        let mut read = Vec::new();
        for path in READS {
            match fs::read(path) {
                Ok(bytes) => read.push(json!({ "path": path, "bytes": bytes.len() })),
                Err(e) => {
                    errors.insert(format!("read {path}"), Value::String(e.to_string()));
                }
            }
        }
        let mut listed = Vec::new();
        for path in LISTS {
            match fs::read_dir(path) {
                Ok(entries) => {
                    let names: Vec<String> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    listed.push(json!({ "path": path, "entries": names }));
                }
                Err(e) => {
                    errors.insert(format!("list {path}"), Value::String(e.to_string()));
                }
            }
        }
        let mut wrote = Vec::new();
        for path in WRITES {
            match fs::write(path, b"escaped") {
                Ok(()) => wrote.push(Value::String((*path).to_owned())),
                Err(e) => {
                    errors.insert(format!("write {path}"), Value::String(e.to_string()));
                }
            }
        }
        // The positive control: the scratch directory itself works.
        let inside = fs::write("/run/inside.txt", b"ok").is_ok()
            && fs::read("/run/inside.txt").map(|b| b == b"ok").unwrap_or(false);
        Ok(json!({
            "read": read,
            "listed": listed,
            "wrote": wrote,
            "inside": inside,
            "links": links,
            "errors": errors,
        }))
    }
}
