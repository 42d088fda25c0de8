//! Scenario 4, isolation: the cost per message of `isolation = "fresh"` (a new
//! instance for every message) against the pooled default (instances reused),
//! measured at the plugin pool, where the modes differ: the same `Pool::call` a
//! route makes, on a 128 B message, one message at a time.
//!
//! The "raw" column here is the pooled mode; the target is on the fresh figure
//! itself (µs per message), not on the ratio.

use std::time::Instant;

use switchyard::plugin::Pool;
use switchyard_abi::Message;

use crate::floor;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::median;

const SCENARIO: &str = "isolation";
const POOLED_CALLS: usize = 200_000;
const FRESH_CALLS: usize = 50_000;
const WARMUP: usize = 2_000;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let pooled_pool = floor::noop_pool(bench, "pooled", 1).await?;
    let fresh_pool = floor::noop_pool(bench, "fresh", 1).await?;
    let (mut pooled, mut fresh) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        let skipped = PerMessage { wall_us: f64::NAN, cpu_us: f64::NAN };
        pooled.push(if bench.raw_side() { per_message(&pooled_pool, bench.count(POOLED_CALLS)).await? } else { skipped });
        fresh.push(if bench.host_side() { per_message(&fresh_pool, bench.count(FRESH_CALLS)).await? } else { skipped });
        eprintln!(
            "  isolation run {}: fresh {:.2} µs/msg ({:.2} µs CPU), pooled {:.2} µs/msg ({:.2} µs CPU)",
            i + 1,
            fresh[i].wall_us,
            fresh[i].cpu_us,
            pooled[i].wall_us,
            pooled[i].cpu_us
        );
    }
    let wall = |runs: &[PerMessage]| median(&runs.iter().map(|run| run.wall_us).collect::<Vec<_>>());
    let cpu = |runs: &[PerMessage]| median(&runs.iter().map(|run| run.cpu_us).collect::<Vec<_>>());
    Ok(vec![
        Figure::new(SCENARIO, "fresh vs pooled, per message", "µs", wall(&fresh), wall(&pooled), Target::HostAtMost(10.0)),
        // Work moved off the message's path would show here and not in the
        // wall time (docs/PERFORMANCE.md: "The floor").
        Figure::new(SCENARIO, "fresh vs pooled, process CPU per message", "µs", cpu(&fresh), cpu(&pooled), Target::Report),
    ])
}

#[derive(Clone, Copy)]
struct PerMessage {
    wall_us: f64,
    cpu_us: f64,
}

/// Mean wall-clock and process CPU µs of one `Pool::call`, after a warm-up.
async fn per_message(pool: &Pool, calls: usize) -> anyhow::Result<PerMessage> {
    let msg = Message { subject: "bench.isolation".into(), payload: setup::payload().to_vec(), ..Message::default() };
    for _ in 0..WARMUP {
        floor::call(pool, &msg).await?;
    }
    let (started, cpu_at_start) = (Instant::now(), setup::process_cpu_seconds());
    for _ in 0..calls {
        floor::call(pool, &msg).await?;
    }
    let per_call = |seconds: f64| seconds * 1e6 / calls as f64;
    Ok(PerMessage { wall_us: per_call(started.elapsed().as_secs_f64()), cpu_us: per_call(setup::process_cpu_seconds() - cpu_at_start) })
}
