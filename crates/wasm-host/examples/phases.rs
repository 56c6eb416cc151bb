fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = ferry_wasm_host::HostConfig::new("/tmp/phase-cache");
    let host = ferry_wasm_host::Host::new(cfg).unwrap();
    let bytes = std::fs::read("/work/main/sandbox/out/hello.wasm").unwrap();
    let p = rt.block_on(host.prepare(&bytes, false)).unwrap();
    struct S; #[async_trait::async_trait] impl ferry_core::port::LogSink for S { async fn write(&self, _: Vec<ferry_core::port::LogLine>) {} }
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let spec = ferry_wasm_host::RunSpec { params: serde_json::json!({"name":"x"}), limits: ferry_core::PoolLimits::DEFAULT, secrets: Default::default(), env: vec![] };
        rt.block_on(host.run(&p, spec, &S, Default::default()));
    }
    println!("total per run {:?}", t.elapsed() / n);
    for (i, ph) in ferry_wasm_host::run::PHASES.iter().enumerate() { println!("phase {i}: {:?}", std::time::Duration::from_nanos(ph.load(std::sync::atomic::Ordering::Relaxed) / n as u64)); }
}
