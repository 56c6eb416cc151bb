//! Example flow: fails with a message (after logging that it will).

use ferry_flow_sdk::serde_json::Value;

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        ferry_flow_sdk::log::error("about to fail");
        Err("the flow failed on purpose".to_owned())
    }
}
