//! Hostile flow: traps. `{"how": "unreachable"}` executes `unreachable`; anything else panics
//! (which, on wasm, also ends in a trap).

use ferry_flow_sdk::serde_json::Value;

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        if params.get("how").and_then(Value::as_str) == Some("unreachable") {
            core::arch::wasm32::unreachable()
        }
        panic!("the flow panicked on purpose")
    }
}
