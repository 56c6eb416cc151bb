//! Hostile flow: spins forever without calling the host. Only the epoch deadline (wall clock)
//! or fuel (CPU) can stop it.

use ferry_flow_sdk::serde_json::Value;

ferry_flow_sdk::flow! {
    fn run(_params: Value) -> Result<Value, String> {
        let mut n: u64 = 0;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}
