//! Hostile flow: returns a 64 MiB JSON result (`{"bytes": N}` to choose the size). Builds the
//! JSON text itself through the raw bindings, so the guest holds one copy and fits its memory.

use ferry_flow_sdk::bindings::Guest;
use ferry_flow_sdk::serde_json::{self, Value};

struct HugeResult;

impl Guest for HugeResult {
    fn run(params: String) -> Result<String, String> {
        let params: Value = serde_json::from_str(&params).unwrap_or(Value::Null);
        let size = params
            .get("bytes")
            .and_then(Value::as_u64)
            .unwrap_or(64 << 20) as usize;
        let mut out = String::with_capacity(size + 16);
        out.push_str("{\"data\":\"");
        out.extend(std::iter::repeat_n('x', size));
        out.push_str("\"}");
        Ok(out)
    }
}

ferry_flow_sdk::bindings::__export_flow!(HugeResult with_types_in ferry_flow_sdk::bindings);
