//! Hostile flow: blocks in a host call (a WASI clock subscription through `thread::sleep`) for
//! a million seconds. Only the async side of the deadline, or cancellation, can end it.

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        ferry_flow_sdk::log::info("going to sleep");
        std::thread::sleep(std::time::Duration::from_secs(1_000_000));
        Ok(json!({ "woke": true }))
    }
}
