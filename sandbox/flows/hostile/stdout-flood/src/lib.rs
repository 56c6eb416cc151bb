//! Hostile flow: writes 100 MB to stdout in 1 KiB lines (`{"bytes": N}` to choose the amount),
//! then returns normally. The host must keep only its log cap and let the flow run on.

use std::io::Write;

use ferry_flow_sdk::serde_json::{json, Value};

ferry_flow_sdk::flow! {
    fn run(params: Value) -> Result<Value, String> {
        let total = params.get("bytes").and_then(Value::as_u64).unwrap_or(100_000_000);
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
        let mut out = std::io::stdout().lock();
        let mut written: u64 = 0;
        while written < total {
            let n = block.len().min((total - written) as usize);
            out.write_all(&block[..n]).map_err(|e| format!("stdout refused a write: {e}"))?;
            written += n as u64;
        }
        out.flush().map_err(|e| format!("stdout refused a flush: {e}"))?;
        Ok(json!({ "written": written }))
    }
}
