//! The wasmtime engines and the epoch ticker that bounds every call in time.
//!
//! Engines differ in two engine-wide switches. Fuel metering costs about 30 % per
//! call, so plugins without a `fuel` budget run on an engine without it. And
//! plugins with `isolation = "fresh"` (a new instance per message) run on an
//! engine with wasmtime's pooling allocator, which keeps memory slots, tables and
//! fiber stacks mapped between instances so that making one costs microseconds
//! instead of a round of mmap/munmap and page faults. The pooled (reuse) engines
//! keep the on-demand allocator: they make an instance once in a long while and
//! should not reserve a pool of address space for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{CacheStore, Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::compiler::CompileLimits;
use super::function_cache::FunctionCache;
use super::nats::Nats;
use super::state::PayloadLimit;
use crate::config::Isolation;

/// How often the epoch advances. Per-call deadlines are checked at this
/// granularity, and a busy guest yields to the async runtime this often.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Fresh instances alive at once, per fresh engine: every message in flight on a
/// fresh route holds one. Beyond this, making an instance fails and the message
/// is retried like any other plugin failure.
pub(super) const FRESH_SLOTS: u32 = 1000;

/// Bytes of each pooled linear memory (and fiber stack) kept resident and reset
/// in place, page by page, when its instance ends, so the next instance in the
/// slot does not fault in again what a small handler touches per message.
const KEEP_RESIDENT: usize = 2 << 20;

/// The shared wasm runtime: engines, module cache location, epoch ticker.
pub struct Runtime {
    plain: Engine,
    fueled: Engine,
    /// Made on first use: a host without fresh plugins reserves no pool.
    fresh_plain: OnceLock<Engine>,
    fresh_fueled: OnceLock<Engine>,
    pub(super) cache_dir: Option<PathBuf>,
    /// The engines the ticker advances; fresh engines join when they are made.
    ticked: Arc<Mutex<Vec<Engine>>>,
    /// Shared with every plugin version loaded through this runtime, so the
    /// ticker runs as long as anything that can run wasm exists.
    pub(super) ticker: Arc<TickerGuard>,
    /// Compiled functions shared by every engine, so a reload recompiles only
    /// what changed.
    functions: Arc<dyn CacheStore>,
    /// The NATS server's `max_payload`, shared with every plugin version loaded
    /// here, so `publish` refuses what no server would take.
    pub(super) max_payload: PayloadLimit,
    /// NATS for the host functions (key-value, requests), once the daemon has a connection.
    pub(super) nats: Arc<Nats>,
    pub(super) limits: CompileLimits,
    /// The `switchyard` binary that compiles modules in a child process; `None`:
    /// compile in this process (see `compiler.rs`).
    pub(super) compiler: Option<PathBuf>,
}

/// Stops the epoch ticker when the last holder drops it. Without ticks no
/// deadline ever fires, so every live plugin version holds one.
#[derive(Debug)]
pub(super) struct TickerGuard(Arc<AtomicBool>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Build the engines. `cache_dir` holds precompiled artifacts keyed by the
    /// module's content hash; `None` disables the cache.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let functions: Arc<dyn CacheStore> = Arc::new(FunctionCache::default());
        let plain = Engine::new(&engine_config(false, &functions)?).map_err(anyhow::Error::from).context("creating the wasm engine")?;
        let fueled =
            Engine::new(&engine_config(true, &functions)?).map_err(anyhow::Error::from).context("creating the fuel-metered wasm engine")?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticked = Arc::new(Mutex::new(vec![plain.clone(), fueled.clone()]));
        spawn_ticker(ticked.clone(), stop.clone())?;
        Ok(Self {
            plain,
            fueled,
            fresh_plain: OnceLock::new(),
            fresh_fueled: OnceLock::new(),
            cache_dir,
            ticked,
            ticker: Arc::new(TickerGuard(stop)),
            functions,
            max_payload: PayloadLimit::default(),
            nats: Arc::default(),
            limits: CompileLimits::default(),
            compiler: super::compiler::binary(),
        })
    }

    /// Refuse modules and stop compilations beyond `limits` (the time and
    /// memory limits hold where modules compile in a child process).
    pub fn with_limits(mut self, limits: CompileLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Tell every plugin version loaded through this runtime (before or after
    /// this call) the connected server's `max_payload`, so a publish larger than
    /// that is refused when the plugin makes it (`TOO_LARGE`) instead of failing
    /// after the message was acked. 0 means unknown: sizes are not checked then.
    /// Call it again when a reconnect lands on a server with another limit.
    pub fn set_max_payload(&self, bytes: usize) {
        self.max_payload.set(bytes);
    }

    /// Give every plugin version loaded here (before or after) the key-value
    /// buckets and requests through `client`, counting the calls in `metrics`;
    /// without it, those calls answer `UNAVAILABLE`.
    pub fn connect(&self, client: async_nats::Client, metrics: Arc<crate::telemetry::Metrics>) {
        self.nats.connect(client, metrics);
    }

    /// `switchyard test`: serve every plugin's key-value calls from these
    /// buckets in memory (by name) instead of NATS.
    pub fn use_memory_buckets(&self, buckets: std::collections::BTreeMap<String, switchyard_abi::kv::MemoryBucket>) {
        self.nats.use_memory(buckets);
    }

    /// `switchyard test`: answer every plugin's requests with these replies (by
    /// subject) instead of NATS; other subjects have no responders.
    pub fn use_responders(&self, responders: std::collections::BTreeMap<String, Vec<u8>>) {
        self.nats.use_responders(responders);
    }

    /// The buckets of [`Runtime::use_memory_buckets`], as the calls left them.
    pub fn memory_buckets(&self) -> std::collections::BTreeMap<String, switchyard_abi::kv::MemoryBucket> {
        self.nats.memory()
    }

    /// The engine for a plugin with these settings.
    pub(super) fn engine(&self, fuel: bool, isolation: Isolation) -> anyhow::Result<Engine> {
        match isolation {
            Isolation::Pooled => Ok(if fuel { self.fueled.clone() } else { self.plain.clone() }),
            Isolation::Fresh => {
                let cell = if fuel { &self.fresh_fueled } else { &self.fresh_plain };
                if let Some(engine) = cell.get() {
                    return Ok(engine.clone());
                }
                let made = Engine::new(&config_for(fuel, isolation, &self.functions)?)
                    .map_err(anyhow::Error::from)
                    .context("creating the wasm engine for fresh instances (pooling allocator)")?;
                // Two loads racing may both make one; only the winner is used and ticked.
                let engine = cell.get_or_init(|| made).clone();
                let mut ticked = self.ticked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !ticked.iter().any(|e| Engine::same(e, &engine)) {
                    ticked.push(engine.clone());
                }
                Ok(engine)
            }
        }
    }
}

/// The configuration of the engine for plugins with these settings; also what
/// the compiler process builds (`compiler.rs`), so its artifacts fit.
pub(super) fn config_for(fuel: bool, isolation: Isolation, functions: &Arc<dyn CacheStore>) -> anyhow::Result<Config> {
    match isolation {
        Isolation::Pooled => engine_config(fuel, functions),
        Isolation::Fresh => fresh_config(fuel, functions),
    }
}

fn engine_config(fuel: bool, functions: &Arc<dyn CacheStore>) -> anyhow::Result<Config> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    config.cranelift_opt_level(OptLevel::Speed);
    config.enable_incremental_compilation(functions.clone()).map_err(anyhow::Error::from).context("enabling the function cache")?;
    Ok(config)
}

fn fresh_config(fuel: bool, functions: &Arc<dyn CacheStore>) -> anyhow::Result<Config> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(FRESH_SLOTS)
        .total_memories(FRESH_SLOTS)
        .total_tables(FRESH_SLOTS)
        .total_stacks(FRESH_SLOTS)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(KEEP_RESIDENT)
        // Reset only the pages an instance dirtied (Linux 6.7+; else memset up
        // to the keep-resident size).
        .pagemap_scan(Enabled::Auto);
    let mut config = engine_config(fuel, functions)?;
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(config)
}

/// A plain thread, not a tokio task: the ticker must keep running when every
/// runtime worker is busy inside guest code, which is exactly when it matters.
fn spawn_ticker(engines: Arc<Mutex<Vec<Engine>>>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    thread::Builder::new()
        .name("switchyard-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(EPOCH_TICK);
                for engine in engines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
                    engine.increment_epoch();
                }
            }
        })
        .context("starting the epoch ticker thread")?;
    Ok(())
}
