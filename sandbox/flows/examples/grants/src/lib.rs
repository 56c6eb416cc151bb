//! Example flow: reports what the run granted it — its environment, its arguments and, for
//! each name in `{"secrets": [...]}`, the secret's value or null.

use ferry_flow_sdk::serde_json::{json, Map, Value};

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let env: Map<String, Value> = std::env::vars().map(|(k, v)| (k, Value::String(v))).collect();
        let args: Vec<String> = std::env::args().collect();
        let mut secrets = Map::new();
        for name in params.get("secrets").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = name.as_str() {
                let value = ferry_flow_sdk::secret(name).map_or(Value::Null, Value::String);
                secrets.insert(name.to_owned(), value);
            }
        }
        let cwd = std::env::current_dir().ok().map(|p| p.display().to_string());
        Ok(json!({ "env": env, "args": args, "secrets": secrets, "cwd": cwd }))
    }
}
