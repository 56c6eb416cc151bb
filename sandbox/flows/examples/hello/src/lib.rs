//! Example flow: `{"name": "ada"}` → `{"greeting": "hello ada"}` (name defaults to "world").

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let name = params.get("name").and_then(Value::as_str).unwrap_or("world");
        Ok(json!({ "greeting": format!("hello {name}") }))
    }
}
