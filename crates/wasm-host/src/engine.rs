//! The wasmtime engines and their linkers, and the epoch ticker that drives deadlines.
//!
//! Two engines: one plain, one that meters fuel. Fuel instrumentation slows every loop and
//! call, and `consume_fuel` is an engine-wide setting, so only runs whose limits ask for a
//! CPU budget (`cpu_fuel_m`) pay for it. Each engine compiles its own code; the cache keys
//! include the engine's compatibility hash, so the two never mix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::HostConfig;
use crate::flow_host::{ComponentState, Flow, ModuleState};

/// Core instances a run may hold in the pool: a Rust component has about five.
const CORE_INSTANCES_PER_RUN: u32 = 16;
/// Memories a run may hold in the pool (a component's main memory, rarely more).
const MEMORIES_PER_RUN: u32 = 2;
const TABLES_PER_RUN: u32 = 16;

/// One engine with the linkers that define everything a flow may import from it.
pub(crate) struct Flavor {
    pub(crate) engine: Engine,
    pub(crate) components: wasmtime::component::Linker<ComponentState>,
    pub(crate) modules: wasmtime::Linker<ModuleState>,
}

/// Builds an engine, pooled if asked and possible. Returns whether it is pooled.
fn build_engine(config: &HostConfig, metered: bool) -> wasmtime::Result<(Engine, bool)> {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.consume_fuel(metered);
    c.max_wasm_stack(config.max_wasm_stack);
    // The fiber a run executes on holds the wasm stack and the host frames beneath it.
    c.async_stack_size(config.max_wasm_stack + 1024 * 1024);
    // Shared memories and threads stay off: wasmtime's `threads` feature is not compiled in.
    if config.pooling {
        let runs = config.max_concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(runs)
            .total_core_instances(runs.saturating_mul(CORE_INSTANCES_PER_RUN))
            .total_memories(runs.saturating_mul(MEMORIES_PER_RUN))
            .total_tables(runs.saturating_mul(TABLES_PER_RUN))
            .total_stacks(runs)
            .max_memories_per_module(1)
            .max_tables_per_module(TABLES_PER_RUN)
            .max_memory_size(
                usize::try_from(u64::from(config.max_memory_mb) << 20).unwrap_or(usize::MAX),
            );
        let mut pooled = c.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => return Ok((engine, true)),
            Err(error) => {
                // Typically the address-space reservation failing (a `ulimit -v`, strict
                // overcommit): on-demand allocation still works, only slower to instantiate.
                tracing::warn!(
                    error = %format!("{error:#}"),
                    metered,
                    "Pooling allocator unavailable; falling back to on-demand allocation"
                );
            }
        }
    }
    Ok((Engine::new(&c)?, false))
}

impl Flavor {
    pub(crate) fn new(config: &HostConfig, metered: bool) -> wasmtime::Result<(Flavor, bool)> {
        let (engine, pooled) = build_engine(config, metered)?;
        let mut components = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components)?;
        Flow::add_to_linker::<_, wasmtime::component::HasSelf<ComponentState>>(
            &mut components,
            |state| state,
        )?;
        let mut modules = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |state: &mut ModuleState| {
            &mut state.wasi
        })?;
        Ok((
            Flavor {
                engine,
                components,
                modules,
            },
            pooled,
        ))
    }
}

/// Advances the engines' epochs every tick, on its own thread, until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(crate) fn start(engines: Vec<Engine>, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("ferry-epoch".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(Ticker { stop })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // The thread ends within a tick; it holds its own engine handles until then.
        self.stop.store(true, Ordering::Relaxed);
    }
}
