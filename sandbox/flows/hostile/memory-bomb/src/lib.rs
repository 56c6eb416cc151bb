//! Hostile flow: grows its memory a MiB at a time, touching every page, until the host refuses.

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            if hoard.len() > 1 << 20 {
                // Unreachable under any limit: a terabyte.
                return Ok(json!({ "mib": hoard.len() }));
            }
        }
    }
}
