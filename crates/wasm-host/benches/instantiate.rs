//! Start-up cost of a flow: instantiating and running `hello` through Ferry's host (pooled
//! and on-demand allocation), beside a raw-wasmtime baseline (a plain engine, linker and
//! instantiation of the same component, none of Ferry's limits, capture or scratch
//! directory). Results and how they were taken: BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferry_core::port::{FlowOutcome, LogLine, LogSink};
use ferry_core::PoolLimits;
use ferry_wasm_host::{Host, HostConfig, Prepared, RunSpec};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The raw baseline's own bindings of the same world.
mod raw {
    wasmtime::component::bindgen!({
        path: "../../sandbox/wit",
        world: "flow",
        exports: { default: async },
    });
}

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl raw::ferry::flow::host::Host for RawState {
    fn log(&mut self, _level: raw::ferry::flow::host::LogLevel, _message: String) {}
    fn secret(&mut self, _name: String) -> Option<String> {
        None
    }
    fn progress(&mut self, _fraction: f32, _message: String) {}
}

struct NullSink;

#[async_trait]
impl LogSink for NullSink {
    async fn write(&self, _lines: Vec<LogLine>) {}
}

fn sandbox() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sandbox")
}

fn hello_bytes() -> Vec<u8> {
    let path = sandbox().join("out/hello.wasm");
    if !path.exists() {
        let status = std::process::Command::new("bash")
            .arg(sandbox().join("build.sh"))
            .status();
        assert!(status.is_ok_and(|s| s.success()), "sandbox/build.sh failed");
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Where scratch directories go: a tmpfs (as production should use, to cap scratch space for
/// real), or the system temp directory (a disk filesystem here).
#[derive(Clone, Copy)]
enum Scratch {
    Tmpfs,
    Disk,
}

fn ferry_host(
    rt: &tokio::runtime::Runtime,
    pooling: bool,
    scratch: Scratch,
    bytes: &[u8],
) -> (Host, Prepared) {
    let mut config = HostConfig::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-cache"));
    config.pooling = pooling;
    if let Scratch::Tmpfs = scratch {
        config.scratch_root = PathBuf::from("/dev/shm");
    }
    let host = Host::new(config).unwrap_or_else(|e| panic!("host: {e}"));
    assert_eq!(host.is_pooling(), pooling);
    let prepared = rt
        .block_on(host.prepare(bytes, false))
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    (host, prepared)
}

fn spec() -> RunSpec {
    RunSpec {
        params: json!({"name": "bench"}),
        limits: PoolLimits {
            timeout_s: Some(60),
            ..PoolLimits::DEFAULT
        },
        secrets: Default::default(),
        env: Vec::new(),
    }
}

fn raw_engine(pooling: bool) -> Engine {
    let mut config = Config::new();
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(32)
            .total_core_instances(512)
            .total_memories(64)
            .total_tables(512)
            .total_stacks(32)
            .max_tables_per_module(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).unwrap_or_else(|e| panic!("engine: {e}"))
}

fn raw_pre(engine: &Engine, bytes: &[u8]) -> raw::FlowPre<RawState> {
    let component = Component::new(engine, bytes).unwrap_or_else(|e| panic!("compile: {e}"));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap_or_else(|e| panic!("{e}"));
    raw::Flow::add_to_linker::<_, HasSelf<RawState>>(&mut linker, |s| s)
        .unwrap_or_else(|e| panic!("{e}"));
    let pre = linker
        .instantiate_pre(&component)
        .unwrap_or_else(|e| panic!("{e}"));
    raw::FlowPre::new(pre).unwrap_or_else(|e| panic!("{e}"))
}

fn raw_store(engine: &Engine) -> Store<RawState> {
    Store::new(
        engine,
        RawState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    )
}

fn benches(c: &mut Criterion) {
    let bytes = hello_bytes();
    let rt = runtime();
    let mut group = c.benchmark_group("hello");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);

    for (label, pooling) in [("pooled", true), ("on-demand", false)] {
        let engine = raw_engine(pooling);
        let pre = raw_pre(&engine, &bytes);
        group.bench_function(BenchmarkId::new("raw-instantiate", label), |b| {
            b.to_async(&rt).iter(|| async {
                let mut store = raw_store(&engine);
                pre.instantiate_async(&mut store)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            })
        });
        group.bench_function(BenchmarkId::new("raw-run", label), |b| {
            b.to_async(&rt).iter(|| async {
                let mut store = raw_store(&engine);
                let flow = pre
                    .instantiate_async(&mut store)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let out = flow
                    .call_run(&mut store, r#"{"name":"bench"}"#)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(out.is_ok());
            })
        });

        for (scratch_label, scratch) in [("tmpfs", Scratch::Tmpfs), ("disk", Scratch::Disk)] {
            if let Scratch::Tmpfs = scratch {
                if !Path::new("/dev/shm").is_dir() {
                    continue;
                }
            }
            let (host, prepared) = ferry_host(&rt, pooling, scratch, &bytes);
            let id = BenchmarkId::new(format!("ferry-run-scratch-{scratch_label}"), label);
            group.bench_function(id, |b| {
                b.to_async(&rt).iter(|| async {
                    let outcome = host
                        .run(&prepared, spec(), &NullSink, CancellationToken::new())
                        .await;
                    assert!(
                        matches!(outcome, FlowOutcome::Completed { .. }),
                        "{outcome:?}"
                    );
                })
            });
        }
    }
    group.finish();
}

criterion_group!(instantiate, benches);
criterion_main!(instantiate);
