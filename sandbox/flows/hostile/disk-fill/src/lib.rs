//! Hostile flow: writes `{"bytes": N}` (default 256 MiB) into files in /run, 1 MiB at a time,
//! then returns how much it wrote. The host must stop it at the run's scratch limit.

use std::io::Write;

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let total = params.get("bytes").and_then(Value::as_u64).unwrap_or(256 << 20);
        let chunk = vec![0x5A_u8; 1 << 20];
        let mut written: u64 = 0;
        let mut file_no = 0;
        while written < total {
            let path = format!("/run/fill-{file_no}.bin");
            let mut file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
            // 16 MiB per file, so both the byte count and the files grow.
            for _ in 0..16 {
                if written >= total {
                    break;
                }
                file.write_all(&chunk).map_err(|e| format!("{path}: {e}"))?;
                written += chunk.len() as u64;
            }
            file_no += 1;
        }
        Ok(json!({ "written": written }))
    }
}
