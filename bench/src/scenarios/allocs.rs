//! Scenario 12, allocations (issue 18): heap allocations per message on the
//! core path (the no-op plugin, 200k messages) and the JetStream ack-each path
//! (50k), host against raw async-nats. The host runs in this process, so the
//! counting allocator (`allocs.rs`) sees its every thread. Each side is run
//! twice, with no message and with `n`, and the difference divided by `n`: what
//! starting and stopping costs drops out. The publisher is the same on both
//! sides, so host − raw is what the host adds per message.

use std::future::Future;

use async_nats::jetstream;

use super::{core, jetstream as js_scenario};
use crate::allocs;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};

const CORE: usize = 200_000;
const JETSTREAM: usize = 50_000;
const SCENARIO: &str = "allocations";

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(CORE);
    let core_host = per_message(n, |k| allocs::during(core::host(bench, k))).await?;
    let core_raw = per_message(n, |k| allocs::during(core::raw(bench, k, None))).await?;

    let m = bench.count(JETSTREAM);
    let (body, config) = js_scenario::body(bench)?;
    let js = jetstream::new(bench.plain_client().await?);
    let staged = |k: usize| {
        let (js, config, body) = (&js, &config, &body);
        async move {
            js_scenario::stage_payload(js, config, js_scenario::SUBJECT, k, setup::payload()).await?;
            Ok::<_, anyhow::Error>(allocs::during(js_scenario::host_with(bench, "jetstream", body, k, setup::ADMIN, |_| ())).await)
        }
    };
    let js_host = per_message_staged(m, staged).await?;
    let staged_raw = |k: usize| {
        let (js, config) = (&js, &config);
        async move {
            js_scenario::stage_payload(js, config, js_scenario::SUBJECT, k, setup::payload()).await?;
            Ok::<_, anyhow::Error>(allocs::during(js_scenario::raw(js, &config.routes[0], k, None)).await)
        }
    };
    let js_raw = per_message_staged(m, staged_raw).await?;
    eprintln!(
        "  allocations per message: core host {:.1} ({:.0} B), raw {:.1} ({:.0} B); jetstream host {:.1} ({:.0} B), raw {:.1} ({:.0} B)",
        core_host.0, core_host.1, core_raw.0, core_raw.1, js_host.0, js_host.1, js_raw.0, js_raw.1
    );
    Ok(vec![
        Figure::new(SCENARIO, "core: allocations per message", "", core_host.0, core_raw.0, Target::Report),
        Figure::new(SCENARIO, "core: bytes allocated per message", "B", core_host.1, core_raw.1, Target::Report),
        Figure::new(SCENARIO, "jetstream ack each: allocations per message", "", js_host.0, js_raw.0, Target::Report),
        Figure::new(SCENARIO, "jetstream ack each: bytes allocated per message", "B", js_host.1, js_raw.1, Target::Report),
    ])
}

/// (allocations, bytes) per message of one side: its run with `n` messages
/// less its run with none.
async fn per_message<F, Fut, T>(n: usize, side: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (anyhow::Result<T>, u64, u64)>,
{
    per_message_staged(n, |k| {
        let run = side(k);
        async move { Ok(run.await) }
    })
    .await
}

/// [`per_message`] for a side that stages its messages first (not counted).
async fn per_message_staged<F, Fut, T>(n: usize, side: F) -> anyhow::Result<(f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<(anyhow::Result<T>, u64, u64)>>,
{
    // With no message the side's own result is an error ("nothing handled"); only its counts matter.
    let (_, calls_idle, bytes_idle) = side(0).await?;
    let (result, calls, bytes) = side(n).await?;
    result?;
    let per = |full: u64, idle: u64| full.saturating_sub(idle) as f64 / n.max(1) as f64;
    Ok((per(calls, calls_idle), per(bytes, bytes_idle)))
}
