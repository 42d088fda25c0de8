//! The "raw + plugin call" baselines: the raw async-nats side of a scenario,
//! calling the same no-op plugin through the same `Pool` a route uses before it
//! acks or replies. The host beside this baseline shows what its pipeline adds
//! beyond the sandboxed call itself; this baseline beside the plain raw one
//! shows what the call costs on this machine, which no host can avoid.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use switchyard::config::Config;
use switchyard::plugin::{Handled, Plugin, PluginSpec, Pool, Runtime};
use switchyard_abi::{Message, Outcome, Publish};

use crate::setup::Bench;

/// The no-op plugin loaded as a route loads it, with `isolation`, in a pool of
/// `concurrency` idle instances (a route's default is 4).
pub(crate) async fn noop_pool(bench: &Bench, isolation: &str, concurrency: usize) -> anyhow::Result<Arc<Pool>> {
    let body = format!("[plugins.noop]\npath = \"{}\"\nisolation = \"{isolation}\"\n", bench.plugin("noop")?.display());
    let path = bench.write_config(&format!("noop-{isolation}"), &body)?;
    let config = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    pool_of(bench, &config, "noop", concurrency).await
}

/// Plugin `name` of `config`, loaded as a route loads it, in a pool of
/// `concurrency`. Every pool shares one wasm runtime (engines, epoch ticker),
/// as a host's routes do.
pub(crate) async fn pool_of(bench: &Bench, config: &Config, name: &str, concurrency: usize) -> anyhow::Result<Arc<Pool>> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = match RUNTIME.get() {
        Some(runtime) => runtime,
        None => {
            let made = Runtime::new(Some(bench.cache_dir()))?;
            RUNTIME.get_or_init(|| made)
        }
    };
    let spec = PluginSpec::from_config(name, config.plugins.get(name).with_context(|| format!("plugin `{name}` is configured"))?)?;
    let (plugin, first) = Plugin::load(runtime, spec).await?;
    Ok(Arc::new(Pool::new(plugin, first, concurrency)))
}

/// Call the plugin on `msg`: what it replied (empty when it acked).
pub(crate) async fn call(pool: &Pool, msg: &Message) -> anyhow::Result<Vec<u8>> {
    match pool.call(msg).await.result.map(|handled| handled.outcome) {
        Ok(Outcome::Reply { payload, .. }) => Ok(payload),
        Ok(Outcome::Ack) => Ok(Vec::new()),
        other => anyhow::bail!("the noop plugin neither acked nor replied: {other:?}"),
    }
}

/// Call the plugin on `msg`, which must ack: what it asked to publish.
pub(crate) async fn publishes(pool: &Pool, msg: &Message) -> anyhow::Result<Vec<Publish>> {
    match pool.call(msg).await.result {
        Ok(Handled { outcome: Outcome::Ack, publishes }) => Ok(publishes),
        other => anyhow::bail!("the plugin did not ack: {other:?}"),
    }
}

/// Call the plugin once on all of `msgs` when the pool can (as a core route
/// does with what its subscription holds), else one by one.
pub(crate) async fn call_together(pool: &Pool, msgs: &[Message]) -> anyhow::Result<()> {
    let refs: Vec<&Message> = msgs.iter().collect();
    match pool.call_batch(&refs, &vec![None; msgs.len()]).await {
        Some(Ok(_)) => Ok(()),
        _ => {
            for msg in msgs {
                call(pool, msg).await?;
            }
            Ok(())
        }
    }
}
