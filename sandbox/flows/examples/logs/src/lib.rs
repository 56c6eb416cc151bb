//! Example flow: writes structured log lines through the host, plain lines to stdout and
//! stderr, and progress; returns how many lines it wrote.

use ferry_flow_sdk::serde_json::{json, Value};
use ferry_flow_sdk::{log, progress};

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        log::debug("debug line");
        log::info("info line");
        progress(0.5, "half way");
        log::warn("warn line");
        log::error("error line");
        println!("stdout line 1");
        println!("stdout line 2");
        eprintln!("stderr line");
        // A last line without a newline: the host keeps it when the flow ends. (A component's
        // `run` returning is not a process exit, so the guest's buffered stdout is flushed here.)
        print!("stdout tail");
        std::io::Write::flush(&mut std::io::stdout()).map_err(|e| e.to_string())?;
        Ok(json!({ "logged": 4, "printed": 4 }))
    }
}
