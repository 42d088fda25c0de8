//! Scenario 4, isolation: the cost per message of `isolation = "fresh"` (a new
//! instance for every message) against the pooled default (instances reused),
//! measured at the plugin pool, where the modes differ: the same `Pool::call` a
//! route makes, on a 128 B message, one message at a time.
//!
//! The "raw" column here is the pooled mode; the target is on the fresh figure
//! itself (µs per message), not on the ratio.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use switchyard::plugin::{Plugin, PluginSpec, Pool, Runtime};
use switchyard_abi::{Message, Outcome};

use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::median;

const SCENARIO: &str = "isolation";
const POOLED_CALLS: usize = 200_000;
const FRESH_CALLS: usize = 50_000;
const WARMUP: usize = 2_000;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let runtime = Runtime::new(Some(bench.cache_dir()))?;
    let pooled = pool(bench, &runtime, "pooled").await?;
    let fresh = pool(bench, &runtime, "fresh").await?;
    let (mut pooled_us, mut fresh_us) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        pooled_us.push(if bench.raw_side() { per_message_us(&pooled, bench.count(POOLED_CALLS)).await? } else { f64::NAN });
        fresh_us.push(if bench.host_side() { per_message_us(&fresh, bench.count(FRESH_CALLS)).await? } else { f64::NAN });
        eprintln!("  isolation run {}: fresh {:.2} µs/msg, pooled {:.2} µs/msg", i + 1, fresh_us[i], pooled_us[i]);
    }
    Ok(vec![Figure::new(SCENARIO, "fresh vs pooled, per message", "µs", median(&fresh_us), median(&pooled_us), Target::HostAtMost(10.0))])
}

/// The no-op plugin loaded as a route would load it, with the given isolation.
async fn pool(bench: &Bench, runtime: &Runtime, isolation: &str) -> anyhow::Result<Arc<Pool>> {
    let body = format!("[plugins.noop]\npath = \"{}\"\nisolation = \"{isolation}\"\n", bench.plugin("noop")?.display());
    let path = bench.write_config(&format!("isolation-{isolation}"), &body)?;
    let config = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    let plugin_config = config.plugins.get("noop").context("the noop plugin is configured")?;
    let spec = PluginSpec::from_config("noop", plugin_config)?;
    let (plugin, first) = Plugin::load(runtime, spec).await?;
    Ok(Arc::new(Pool::new(plugin, first, 1)))
}

/// Mean wall-clock µs of one `Pool::call`, after a warm-up.
async fn per_message_us(pool: &Pool, calls: usize) -> anyhow::Result<f64> {
    let msg = Message { subject: "bench.isolation".into(), payload: setup::payload().to_vec(), ..Message::default() };
    let call = async || -> anyhow::Result<()> {
        match pool.call(&msg).await.result.map(|handled| handled.outcome) {
            Ok(Outcome::Ack) => Ok(()),
            other => anyhow::bail!("the noop plugin did not ack: {other:?}"),
        }
    };
    for _ in 0..WARMUP {
        call().await?;
    }
    let started = Instant::now();
    for _ in 0..calls {
        call().await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / calls as f64)
}
