//! Scenario 1, core NATS: a burst of 1M × 128 B through the no-op plugin, against
//! a raw async-nats subscriber that counts them. Throughput is messages over the
//! time from the first publish to the last message handled; both sides subscribe
//! with the host's subscription capacity and must drop nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use switchyard::MAX_TOGETHER;
use switchyard::plugin::Pool;

use crate::floor;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::median;
use switchyard::daemon::Host;
use switchyard::telemetry::Outcome;

pub(crate) const FULL: usize = 1_000_000;
const SCENARIO: &str = "core 1M x 128B";

/// One side's run: throughput, messages lost, and the machine's busy CPU per
/// message (bench, host and nats-server together), which says whether the run
/// was bound by the cores.
pub(crate) struct Run {
    pub rate: f64,
    pub dropped: u64,
    pub cpu_us: f64,
    /// This process's CPU per message: the publisher and the side measured.
    pub process_us: f64,
}

impl Run {
    const SKIPPED: Run = Run { rate: f64::NAN, dropped: 0, cpu_us: f64::NAN, process_us: f64::NAN };
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(FULL);
    let (mut host_runs, mut raw_runs, mut call_runs) = (Vec::new(), Vec::new(), Vec::new());
    let pool = floor::noop_pool(bench, "pooled", 4).await?;
    for i in 0..bench.runs {
        // Alternate so drift on the machine touches both sides alike.
        raw_runs.push(if bench.raw_side() { raw(bench, n, None).await? } else { Run::SKIPPED });
        call_runs.push(if bench.raw_side() { raw(bench, n, Some(pool.clone())).await? } else { Run::SKIPPED });
        host_runs.push(if bench.host_side() { host(bench, n).await? } else { Run::SKIPPED });
        let line = |run: &Run| format!("{:.0} msg/s ({:.2} µs CPU/msg, {:.2} in process)", run.rate, run.cpu_us, run.process_us);
        eprintln!("  core run {}: host {}, raw {}, raw + call {}", i + 1, line(&host_runs[i]), line(&raw_runs[i]), line(&call_runs[i]));
    }
    let rates = |runs: &[Run]| median(&runs.iter().map(|r| r.rate).collect::<Vec<_>>());
    let dropped = |runs: &[Run]| runs.iter().map(|r| r.dropped).sum::<u64>() as f64;
    let process = |runs: &[Run]| median(&runs.iter().map(|r| r.process_us).collect::<Vec<_>>());
    Ok(vec![
        Figure::new(SCENARIO, "throughput", "msg/s", rates(&host_runs), rates(&raw_runs), Target::RatioAtLeast(0.80)),
        // Publisher and host against publisher and subscriber, in this one process.
        Figure::new(SCENARIO, "process CPU per message", "µs", process(&host_runs), process(&raw_runs), Target::OverRawAtMost(0.5)),
        Figure::new(SCENARIO, "dropped, all runs", "msgs", dropped(&host_runs), dropped(&raw_runs), Target::BothZero),
        // The same two beside a raw subscriber that also calls the plugin (`floor.rs`).
        Figure::new(SCENARIO, "throughput vs raw + plugin call", "msg/s", rates(&host_runs), rates(&call_runs), Target::Report),
        Figure::new(
            SCENARIO,
            "process CPU per message vs raw + plugin call",
            "µs",
            process(&host_runs),
            process(&call_runs),
            Target::Report,
        ),
    ])
}

/// A raw subscriber that counts the messages; with `pool`, it first calls the
/// plugin on them, as a core route does: what the subscription holds (up to
/// the route's batch), in one call.
pub(crate) async fn raw(bench: &Bench, n: usize, pool: Option<Arc<Pool>>) -> anyhow::Result<Run> {
    let slow = Arc::new(AtomicU64::new(0));
    let client = bench.client(slow.clone()).await?;
    let mut subscriber = client.subscribe("bench.core.raw").await?;
    client.flush().await?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::with_capacity(MAX_TOGETHER);
        while let Some(msg) = subscriber.next().await {
            let Some(pool) = &pool else {
                counted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            held.push(switchyard::from_core(&msg));
            while held.len() < MAX_TOGETHER
                && let Some(Some(msg)) = subscriber.next().now_or_never()
            {
                held.push(switchyard::from_core(&msg));
            }
            if floor::call_together(pool, &held).await.is_ok() {
                counted.fetch_add(held.len() as u64, Ordering::Relaxed);
            }
            held.clear();
        }
    });
    let run = publish_and_wait(bench, "bench.core.raw", n, || count.load(Ordering::Relaxed)).await?;
    task.abort();
    Ok(run)
}

pub(crate) async fn host(bench: &Bench, n: usize) -> anyhow::Result<Run> {
    host_with(bench, n, setup::ADMIN, |_| ()).await
}

/// The host side with `sections` in place of the preamble's `[admin]` (the
/// telemetry scenario's settings) and `during` started once the host is up,
/// kept until the burst is handled, and dropped before the host stops.
pub(crate) async fn host_with<T>(bench: &Bench, n: usize, sections: &str, during: impl FnOnce(&Host) -> T) -> anyhow::Result<Run> {
    let config = format!(
        "[plugins.noop]\npath = \"{}\"\n\n[[routes]]\nname = \"core\"\nplugin = \"noop\"\nsubjects = [\"bench.core.host\"]\n",
        bench.plugin("noop")?.display()
    );
    let host = bench.host_with("core", sections, &config).await?;
    let during = during(&host);
    let metrics = host.metrics.clone();
    let run = publish_and_wait(bench, "bench.core.host", n, || metrics.total(Outcome::Ack)).await;
    drop(during);
    let slow = metrics.slow_consumers.get();
    host.stop().await;
    let run = run?;
    if slow > 0 {
        eprintln!("  host reported {slow} slow-consumer event(s)");
    }
    Ok(run)
}

/// Publish `n` messages as fast as one client can, then wait for `counter` to
/// reach `n`. Time runs from the first publish to the last message counted.
pub(crate) async fn publish_and_wait(bench: &Bench, subject: &str, n: usize, counter: impl Fn() -> u64) -> anyhow::Result<Run> {
    let publisher = bench.plain_client().await?;
    let payload = setup::payload();
    let subject = async_nats::Subject::from(subject);
    let cpu_at_start = setup::cpu_busy_seconds();
    let process_at_start = setup::process_cpu_seconds();
    let started = Instant::now();
    for _ in 0..n {
        publisher.publish(subject.clone(), payload.clone()).await?;
    }
    publisher.flush().await?;
    let progress = setup::wait_for(counter, n as u64).await;
    let process_seconds = setup::process_cpu_seconds() - process_at_start;
    let elapsed = progress.last.duration_since(started).as_secs_f64();
    Ok(Run {
        rate: progress.reached as f64 / elapsed,
        dropped: n as u64 - progress.reached.min(n as u64),
        cpu_us: (progress.cpu_at_last - cpu_at_start) * 1e6 / progress.reached.max(1) as f64,
        process_us: process_seconds * 1e6 / progress.reached.max(1) as f64,
    })
}
