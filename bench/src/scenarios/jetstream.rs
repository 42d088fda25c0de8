//! Scenario 2, JetStream: 200k × 128 B already in a stream, consumed by a durable
//! pull consumer with an explicit ack per message: the host's route with the
//! no-op plugin against a raw async-nats pull consumer acking each. Both use the
//! route's consumer settings (batch, max_ack_pending, ack_wait), so the only
//! difference is the host. Throughput runs from the first message handled to the
//! last one acked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use switchyard::config::{Config, RouteConfig};
use switchyard::daemon::Host;
use switchyard::plugin::Pool;
use switchyard::telemetry::Outcome;

use crate::floor;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench, Progress};
use crate::stats::median;

pub(crate) const FULL: usize = 200_000;
const SCENARIO: &str = "jetstream 200k x 128B";
const STREAM: &str = "BENCH";
pub(crate) const SUBJECT: &str = "bench.js.in";
/// Stream acks awaited at once while staging the messages.
const PUBLISH_WINDOW: usize = 2_000;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(FULL);
    let (body, config) = body(bench)?;
    let js = jetstream::new(bench.plain_client().await?);
    let pool = floor::noop_pool(bench, "pooled", 4).await?;
    let route = &config.routes[0];
    let raw_run = |pool| raw(&js, route, n, pool);
    let rates = staged_runs(bench, "jetstream", &body, &config, SUBJECT, n, setup::payload(), Some(pool), raw_run).await?;
    Ok(vec![
        Figure::new(SCENARIO, "throughput, ack each", "msg/s", rates.host, rates.raw, Target::RatioAtLeast(0.90)),
        Figure::new(SCENARIO, "throughput, ack each vs raw + plugin call", "msg/s", rates.host, rates.floor, Target::Report),
    ])
}

/// The route's config text (after the preamble), and the config it loads as.
pub(crate) fn body(bench: &Bench) -> anyhow::Result<(String, Config)> {
    let body = format!(
        "[[streams]]\nname = \"{STREAM}\"\nsubjects = [\"bench.js.>\"]\n\n\
         [plugins.noop]\npath = \"{}\"\n\n\
         [[routes]]\nname = \"host\"\nplugin = \"noop\"\nstream = \"{STREAM}\"\n",
        bench.plugin("noop")?.display()
    );
    bench.loaded_config("jetstream", body)
}

/// Fresh streams (`config`'s, created exactly as the host creates them), with
/// `n` messages published to `subject`.
pub(crate) async fn stage(js: &jetstream::Context, config: &Config, subject: &str, n: usize) -> anyhow::Result<()> {
    stage_payload(js, config, subject, n, setup::payload()).await
}

/// Median rates of [`staged_runs`], in messages per second.
pub(crate) struct Rates {
    pub(crate) host: f64,
    pub(crate) raw: f64,
    /// The raw side calling the plugin (`floor.rs`); NaN when not measured.
    pub(crate) floor: f64,
}

/// The host's route on `body` against a raw consumer (`raw(None)`), and with
/// `floor` against the same consumer calling that pool's plugin
/// (`raw(Some(pool))`), each on `n` messages of `payload` staged on `subject`
/// anew, `bench.runs` times. `label` names the scenario in the per-run lines.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn staged_runs<F, Fut>(
    bench: &Bench,
    label: &str,
    body: &str,
    config: &Config,
    subject: &str,
    n: usize,
    payload: bytes::Bytes,
    floor: Option<Arc<Pool>>,
    raw: F,
) -> anyhow::Result<Rates>
where
    F: Fn(Option<Arc<Pool>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(f64, f64)>>,
{
    let js = jetstream::new(bench.plain_client().await?);
    let (mut host_rates, mut raw_rates, mut floor_rates) = (Vec::new(), Vec::new(), Vec::new());
    let line = |(rate, cpu): (f64, f64)| format!("{rate:.0} msg/s ({cpu:.2} µs CPU/msg)");
    for i in 0..bench.runs {
        let skipped = (f64::NAN, f64::NAN);
        let (mut raw_run, mut floor_run, mut host_run) = (skipped, skipped, skipped);
        if bench.raw_side() {
            stage_payload(&js, config, subject, n, payload.clone()).await?;
            raw_run = raw(None).await?;
            if let Some(pool) = &floor {
                stage_payload(&js, config, subject, n, payload.clone()).await?;
                floor_run = raw(Some(pool.clone())).await?;
            }
        }
        if bench.host_side() {
            stage_payload(&js, config, subject, n, payload.clone()).await?;
            host_run = host_with(bench, label, body, n, setup::ADMIN, |_| ()).await?;
        }
        host_rates.push(host_run.0);
        raw_rates.push(raw_run.0);
        floor_rates.push(floor_run.0);
        let with_call = if floor.is_some() { format!(", raw + call {}", line(floor_run)) } else { String::new() };
        eprintln!("  {label} run {}: host {}, raw {}{with_call}", i + 1, line(host_run), line(raw_run));
    }
    Ok(Rates { host: median(&host_rates), raw: median(&raw_rates), floor: median(&floor_rates) })
}

/// [`stage`] with `payload` in every message.
pub(crate) async fn stage_payload(
    js: &jetstream::Context,
    config: &Config,
    subject: &str,
    n: usize,
    payload: bytes::Bytes,
) -> anyhow::Result<()> {
    for stream in &config.streams {
        let _ = js.delete_stream(stream.name.get_ref()).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    switchyard::broker::ensure_streams(js, &config.streams, deadline).await?;
    let mut acks = VecDeque::with_capacity(PUBLISH_WINDOW);
    for _ in 0..n {
        if acks.len() == PUBLISH_WINDOW
            && let Some(ack) = acks.pop_front()
        {
            let _: jetstream::publish::PublishAck = ack_of(ack).await?;
        }
        acks.push_back(js.publish(subject.to_owned(), payload.clone()).await.context("staging a message")?);
    }
    for ack in acks {
        ack_of(ack).await?;
    }
    Ok(())
}

async fn ack_of(ack: jetstream::context::PublishAckFuture) -> anyhow::Result<jetstream::publish::PublishAck> {
    ack.await.context("stream ack while staging")
}

/// A raw pull consumer with the route's settings, acking every message; with
/// `pool`, after calling the plugin on it. Messages per second and busy CPU µs
/// per message.
pub(crate) async fn raw(js: &jetstream::Context, route: &RouteConfig, n: usize, pool: Option<Arc<Pool>>) -> anyhow::Result<(f64, f64)> {
    let mut messages = raw_messages(js, STREAM, route).await?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let max_deliver = route.max_deliver;
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = messages.next().await {
            if let Some(pool) = &pool
                && floor::call(pool, &switchyard::from_jetstream(&msg, max_deliver)).await.is_err()
            {
                continue;
            }
            if msg.ack().await.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let progress = setup::wait_for(|| count.load(Ordering::Relaxed), n as u64).await;
    task.abort();
    rate(&progress, n)
}

/// The messages of a raw durable pull consumer on `stream` with `route`'s
/// consumer settings (max_deliver, ack_wait, max_ack_pending, batch).
pub(crate) async fn raw_messages(js: &jetstream::Context, stream: &str, route: &RouteConfig) -> anyhow::Result<pull::Stream> {
    let consumer = js
        .get_stream(stream)
        .await?
        .create_consumer(pull::Config {
            durable_name: Some("raw".into()),
            max_deliver: route.max_deliver,
            ack_wait: route.ack_wait,
            max_ack_pending: route.max_ack_pending,
            ..Default::default()
        })
        .await?;
    Ok(consumer.stream().max_messages_per_batch(route.batch).messages().await?)
}

/// The host side (named `label`) with `sections` in place of the preamble's
/// `[admin]` (the telemetry scenario's settings) and `during` started once the
/// host is up, kept until the stream is consumed, and dropped before the host stops.
pub(crate) async fn host_with<T>(
    bench: &Bench,
    label: &str,
    body: &str,
    n: usize,
    sections: &str,
    during: impl FnOnce(&Host) -> T,
) -> anyhow::Result<(f64, f64)> {
    let host = bench.host_with(label, sections, body).await?;
    let during = during(&host);
    let metrics = host.metrics.clone();
    let progress = setup::wait_for(|| metrics.total(Outcome::Ack), n as u64).await;
    drop(during);
    host.stop().await;
    rate(&progress, n)
}

pub(crate) fn rate(progress: &Progress, n: usize) -> anyhow::Result<(f64, f64)> {
    let first = progress.first.context("no message was handled")?;
    anyhow::ensure!(progress.reached >= n as u64, "only {} of {n} messages were acked", progress.reached);
    let rate = (progress.reached - 1) as f64 / progress.last.duration_since(first).as_secs_f64();
    Ok((rate, progress.cpu_us_per_message()))
}
