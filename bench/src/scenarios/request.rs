//! Scenario 3, request/reply: 20k sequential requests (p50 and p99 latency) and
//! then 64 requesters at once (throughput), answered by the no-op plugin (which
//! replies with the payload) against a raw async-nats responder doing the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use switchyard::plugin::Pool;

use crate::floor;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::{median, percentile_us};

const SEQUENTIAL: usize = 20_000;
const REQUESTERS: usize = 64;
/// Requests per requester in the concurrent phase (at full scale).
const PER_REQUESTER: usize = 500;
const WARMUP: usize = 200;
const SCENARIO: &str = "request/reply 128B";

#[derive(Default)]
struct Runs {
    p50: Vec<f64>,
    p99: Vec<f64>,
    throughput: Vec<f64>,
}

impl Runs {
    fn skip(&mut self) {
        self.p50.push(f64::NAN);
        self.p99.push(f64::NAN);
        self.throughput.push(f64::NAN);
    }
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let (mut host, mut raw, mut with_call) = (Runs::default(), Runs::default(), Runs::default());
    let pool = floor::noop_pool(bench, "pooled", 4).await?;
    let config = format!(
        "[plugins.noop]\npath = \"{}\"\n\n[[routes]]\nname = \"reply\"\nplugin = \"noop\"\nsubjects = [\"bench.rr.host\"]\n",
        bench.plugin("noop")?.display()
    );
    for i in 0..bench.runs {
        if bench.raw_side() {
            let responder = raw_responder(bench, None).await?;
            let result = measure(bench, "bench.rr.raw", &mut raw).await;
            responder.abort();
            result?;
            let responder = raw_responder(bench, Some(pool.clone())).await?;
            let result = measure(bench, "bench.rr.raw", &mut with_call).await;
            responder.abort();
            result?;
        } else {
            raw.skip();
            with_call.skip();
        }
        if bench.host_side() {
            let served = bench.host("request", &config).await?;
            let result = measure(bench, "bench.rr.host", &mut host).await;
            served.stop().await;
            result?;
        } else {
            host.skip();
        }
        eprintln!(
            "  request run {}: p50 host {:.0} µs raw {:.0} µs (+ call {:.0}); p99 host {:.0} µs raw {:.0} µs (+ call {:.0}); \
             64 at once host {:.0}/s raw {:.0}/s (+ call {:.0}/s)",
            i + 1,
            host.p50[i],
            raw.p50[i],
            with_call.p50[i],
            host.p99[i],
            raw.p99[i],
            with_call.p99[i],
            host.throughput[i],
            raw.throughput[i],
            with_call.throughput[i]
        );
    }
    let figures = |baseline: &Runs, versus: &str, [p50, p99, throughput]: [Target; 3]| {
        [
            Figure::new(SCENARIO, format!("latency p50, sequential{versus}"), "µs", median(&host.p50), median(&baseline.p50), p50),
            Figure::new(SCENARIO, format!("latency p99, sequential{versus}"), "µs", median(&host.p99), median(&baseline.p99), p99),
            Figure::new(
                SCENARIO,
                format!("throughput, 64 requesters{versus}"),
                "req/s",
                median(&host.throughput),
                median(&baseline.throughput),
                throughput,
            ),
        ]
    };
    // ≤ 1.10 × raw time per request is ≥ 1/1.10 of raw throughput.
    let mut all = figures(&raw, "", [Target::RatioAtMost(1.10), Target::RatioAtMost(1.10), Target::RatioAtLeast(1.0 / 1.10)]).to_vec();
    // The same beside a raw responder that also calls the plugin (`floor.rs`).
    all.extend(figures(&with_call, " vs raw + plugin call", [Target::Report; 3]));
    Ok(all)
}

/// The raw baseline: answer every request with its payload; with `pool`, with
/// what the plugin replied, one request at a time.
async fn raw_responder(bench: &Bench, pool: Option<Arc<Pool>>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = bench.plain_client().await?;
    let mut requests = client.subscribe("bench.rr.raw").await?;
    client.flush().await?;
    Ok(tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let payload = match &pool {
                Some(pool) => match floor::call(pool, &switchyard::from_core(&msg)).await {
                    Ok(payload) => payload.into(),
                    Err(_) => continue,
                },
                None => msg.payload,
            };
            if let Some(reply) = msg.reply {
                let _ = client.publish(reply, payload).await;
            }
        }
    }))
}

async fn measure(bench: &Bench, subject: &'static str, runs: &mut Runs) -> anyhow::Result<()> {
    let client = bench.plain_client().await?;
    let payload = setup::payload();
    for _ in 0..WARMUP {
        client.request(subject, payload.clone()).await.context("warm-up request")?;
    }
    let n = bench.count(SEQUENTIAL);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = Instant::now();
        client.request(subject, payload.clone()).await.with_context(|| format!("request to {subject}"))?;
        latencies.push(sent.elapsed());
    }
    runs.p50.push(percentile_us(&mut latencies, 50.0));
    runs.p99.push(percentile_us(&mut latencies, 99.0));

    let per = bench.count(PER_REQUESTER * REQUESTERS) / REQUESTERS;
    let started = Instant::now();
    let tasks: Vec<_> = (0..REQUESTERS)
        .map(|_| {
            let (client, payload) = (client.clone(), payload.clone());
            tokio::spawn(async move {
                for _ in 0..per {
                    client.request(subject, payload.clone()).await?;
                }
                Ok::<_, async_nats::RequestError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("requester task")?.context("concurrent request")?;
    }
    let elapsed: Duration = started.elapsed();
    runs.throughput.push((per * REQUESTERS) as f64 / elapsed.as_secs_f64());
    Ok(())
}
