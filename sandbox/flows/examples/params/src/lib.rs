//! Example flow: typed parameters in, a computed result out. `{"numbers": [1, 2], "scale": 10}`
//! → `{"count": 2, "sum": 3, "scaled": [10, 20]}`; bad parameters are the flow's error.

use ferry_flow_sdk::serde_json::{json, Value};

#[derive(serde::Deserialize)]
struct Params {
    numbers: Vec<i64>,
    #[serde(default = "one")]
    scale: i64,
}

fn one() -> i64 {
    1
}

ferry_flow_sdk::flow! {
    fn run(params: Params) -> Result<Value, String> {
        let scaled: Vec<i64> = params
            .numbers
            .iter()
            .map(|n| n.checked_mul(params.scale).ok_or("overflow"))
            .collect::<Result<_, _>>()?;
        Ok(json!({
            "count": params.numbers.len(),
            "sum": params.numbers.iter().sum::<i64>(),
            "scaled": scaled,
        }))
    }
}
