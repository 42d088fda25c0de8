//! The wasmtime engines and the epoch ticker that bounds every call in time.
//!
//! Two engines exist because fuel metering is an engine-wide switch that costs
//! about 30 % per call: plugins without a `fuel` budget run on the plain engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances. Per-call deadlines are checked at this
/// granularity, and a busy guest yields to the async runtime this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The shared wasm runtime: engines, module cache location, epoch ticker.
pub struct Runtime {
    pub(super) plain: Engine,
    pub(super) fueled: Engine,
    pub(super) cache_dir: Option<PathBuf>,
    /// Shared with every plugin version loaded through this runtime, so the
    /// ticker runs as long as anything that can run wasm exists.
    pub(super) ticker: Arc<TickerGuard>,
}

/// Stops the epoch ticker when the last holder drops it. Without ticks no
/// deadline ever fires, so every live plugin version holds one.
#[derive(Debug)]
pub struct TickerGuard(Arc<AtomicBool>);

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
        let plain = Engine::new(&engine_config(false)).map_err(anyhow::Error::from).context("creating the wasm engine")?;
        let fueled = Engine::new(&engine_config(true)).map_err(anyhow::Error::from).context("creating the fuel-metered wasm engine")?;
        let stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(vec![plain.clone(), fueled.clone()], stop.clone())?;
        Ok(Self { plain, fueled, cache_dir, ticker: Arc::new(TickerGuard(stop)) })
    }

    pub(super) fn engine(&self, fuel: bool) -> &Engine {
        if fuel { &self.fueled } else { &self.plain }
    }
}

fn engine_config(fuel: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    config.cranelift_opt_level(OptLevel::Speed);
    config
}

/// A plain thread, not a tokio task: the ticker must keep running when every
/// runtime worker is busy inside guest code, which is exactly when it matters.
fn spawn_ticker(engines: Vec<Engine>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    thread::Builder::new()
        .name("switchyard-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(EPOCH_TICK);
                for engine in &engines {
                    engine.increment_epoch();
                }
            }
        })
        .context("starting the epoch ticker thread")?;
    Ok(())
}
