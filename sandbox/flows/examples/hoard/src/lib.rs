//! Example flow: takes `{"mib": N, "passes": P}` and grows to N MiB a MiB at a time, writing
//! every page P times on the way (slowly, like a real job building a large table), then
//! returns `{"mib": N, "checksum": ...}`. Used to show that managed runs wait for memory
//! instead of all taking it at once.

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let mib = params["mib"].as_u64().ok_or("mib must be a whole number")? as usize;
        let passes = params["passes"].as_u64().unwrap_or(4).max(1) as usize;
        let mut hoard: Vec<Vec<u8>> = Vec::with_capacity(mib);
        let mut checksum: u64 = 0;
        for i in 0..mib {
            let mut chunk = vec![0u8; 1 << 20];
            for pass in 0..passes {
                for (j, b) in chunk.iter_mut().enumerate().step_by(512) {
                    *b = (i ^ j ^ pass) as u8;
                }
            }
            checksum = checksum.wrapping_add(chunk.iter().step_by(4096).map(|b| u64::from(*b)).sum::<u64>());
            hoard.push(chunk);
        }
        Ok(json!({ "mib": hoard.len(), "checksum": checksum }))
    }
}
