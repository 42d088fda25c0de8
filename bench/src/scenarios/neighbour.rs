//! Scenario 7, a busy neighbour: a real `switchyard run` serving two routes, a
//! healthy one (the no-op plugin, request/reply) and a busy one whose plugin
//! spins until its timeout on every message (`faulty` with `action = "loop"`),
//! kept saturated by a publisher. The healthy route's request latency with the
//! busy route saturated is compared with its latency while the busy route is
//! idle, in the same host: the "raw" column holds the quiet figures.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::{median, percentile_us};

const SCENARIO: &str = "busy neighbour";
const HEALTHY: &str = "bench.nb.healthy";
const BUSY: &str = "bench.nb.busy";
/// How long each phase sends requests to the healthy route (at full scale):
/// a time, not a count, so a starved host does not stretch the phase and pile
/// up work for the next one.
const PHASE: Duration = Duration::from_secs(2);
/// The busy route's workers, each spinning for its whole timeout.
const BUSY_CONCURRENCY: usize = 4;
/// Publishes to the busy route per second: a little more than its 4 workers
/// take (8 a second), so all of them spin all the time and little piles up.
const BUSY_RATE: u64 = 10;

#[derive(Default)]
struct Runs {
    quiet_p50: Vec<f64>,
    quiet_p99: Vec<f64>,
    busy_p50: Vec<f64>,
    busy_p99: Vec<f64>,
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    if !bench.host_side() {
        return Ok(Vec::new());
    }
    let body = format!(
        "[plugins.noop]\npath = \"{noop}\"\n\n\
         [plugins.spin]\npath = \"{faulty}\"\ntimeout = \"500ms\"\nconfig = {{ action = \"loop\" }}\n\n\
         [[routes]]\nname = \"healthy\"\nplugin = \"noop\"\nsubjects = [\"{HEALTHY}\"]\n\n\
         [[routes]]\nname = \"busy\"\nplugin = \"spin\"\nsubjects = [\"{BUSY}\"]\nconcurrency = {BUSY_CONCURRENCY}\n\
         retry = {{ attempts = 1 }}\n",
        noop = bench.plugin("noop")?.display(),
        faulty = bench.plugin("faulty")?.display(),
    );
    let config = bench.write_config("neighbour", &body)?;
    let _host = process::spawn_ready(process::switchyard_run(&config)?, "ready:").await.context("starting `switchyard run`")?;
    let client = bench.plain_client().await?;
    let mut runs = Runs::default();
    for run in 1..=bench.runs {
        let mut quiet = requests(bench, &client).await?;
        runs.quiet_p50.push(percentile_us(&mut quiet, 50.0));
        runs.quiet_p99.push(percentile_us(&mut quiet, 99.0));

        let load = busy_load(client.clone());
        // Let every busy worker start spinning before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let measured = requests(bench, &client).await;
        load.abort();
        let mut busy = measured?;
        runs.busy_p50.push(percentile_us(&mut busy, 50.0));
        runs.busy_p99.push(percentile_us(&mut busy, 99.0));
        eprintln!(
            "  neighbour run {run}: healthy p50 {:.0} µs quiet, {:.0} µs beside the busy route; p99 {:.0} µs quiet, {:.0} µs beside it",
            runs.quiet_p50[run - 1],
            runs.busy_p50[run - 1],
            runs.quiet_p99[run - 1],
            runs.busy_p99[run - 1],
        );
        // Let the busy route's backlog time out before the next quiet phase.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let figure = |percentile: &str, busy: &[f64], quiet: &[f64]| {
        let metric = format!("healthy route {percentile}, busy vs quiet");
        Figure::new(SCENARIO, metric, "µs", median(busy), median(quiet), Target::RatioAtMost(2.0))
    };
    Ok(vec![figure("p50", &runs.busy_p50, &runs.quiet_p50), figure("p99", &runs.busy_p99, &runs.quiet_p99)])
}

/// Sequential requests to the healthy route for one phase; their latencies.
async fn requests(bench: &Bench, client: &async_nats::Client) -> anyhow::Result<Vec<Duration>> {
    let payload = setup::payload();
    let until = Instant::now() + PHASE.mul_f64(bench.scale.min(1.0));
    let mut latencies = Vec::new();
    while Instant::now() < until || latencies.len() < 100 {
        let sent = Instant::now();
        client.request(HEALTHY, payload.clone()).await.context("request to the healthy route")?;
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// Publish to the busy route at `BUSY_RATE` until aborted.
fn busy_load(client: async_nats::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / BUSY_RATE));
        loop {
            tick.tick().await;
            if client.publish(BUSY, "{}".into()).await.is_err() || client.flush().await.is_err() {
                return;
            }
        }
    })
}
