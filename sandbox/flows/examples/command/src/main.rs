//! Example flow of kinds 2 and 3 — the same program is built as a plain WASI 0.2 command
//! (package `command`, wasm32-wasip2) and as a WASI preview1 core module with `_start`
//! (package `preview1`, wasm32-wasip1, which builds this file too): parameters JSON on stdin,
//! a greeting on stdout, the result in /run/result.json. `{"exit": 3}` exits with that code
//! instead; `{"result": "text"}` writes that text as the result file, `{"result": null}`
//! writes none. The result names the package, so tests see which kind ran.

use std::io::Read;

use serde_json::{json, Value};

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read parameters: {e}");
        std::process::exit(2);
    }
    let params: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
    if let Some(code) = params.get("exit").and_then(Value::as_i64) {
        eprintln!("exiting with {code} as asked");
        std::process::exit(code as i32);
    }
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("world");
    println!("hello from a command, {name}");
    eprintln!("a line on stderr");
    let result = match params.get("result") {
        None => json!({ "greeting": format!("hello {name}"), "kind": env!("CARGO_PKG_NAME") })
            .to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(_) => return,
    };
    if let Err(e) = std::fs::write("/run/result.json", result) {
        eprintln!("cannot write the result: {e}");
        std::process::exit(1);
    }
}
