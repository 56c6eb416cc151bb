//! Hostile flow: recurses without bound until the stack runs out.

use ferry_flow_sdk::serde_json::{json, Value};

#[inline(never)]
fn descend(depth: u64) -> u64 {
    // Work on both sides of the call so it is not a tail call the optimizer could loop.
    let here = std::hint::black_box(depth);
    if here == u64::MAX {
        return 0;
    }
    descend(here + 1).wrapping_add(here)
}

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        Ok(json!({ "depth": descend(0) }))
    }
}
