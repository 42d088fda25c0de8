//! Scenario 8, telemetry: what metrics and tracing cost the message path. The
//! core burst (scenario 1) and the JetStream consumption (scenario 2), host side
//! only, measured with the same code under three settings, alternating within
//! each run:
//!
//! - `off`: `[admin] listen = "off"` and no `[telemetry.otlp]`;
//! - `on`: the admin listener on a free port, scraped once a second as
//!   Prometheus would, and a span per message exported over OTLP/HTTP
//!   (`batch_delay = "200ms"`) to a sink the bench runs (it answers 200 and
//!   counts requests, bytes and spans, so the report shows spans really left);
//! - `on + 100 scrapers` (core only): as `on`, with 100 scrapes of `/metrics`
//!   at once, every second, for the whole burst.
//!
//! The sink and the scrapers run on a runtime of their own (one thread), as a
//! collector and Prometheus would run outside the host; the host's runtime
//! serves only the host and the publisher. As in the busy neighbour, the host
//! is compared with itself: the "host" column holds the figure with telemetry
//! on, the "raw" column the figure with it off. The exporter's queue is bounded
//! and drops spans rather than slow messages, so a burst may export fewer spans
//! than it has messages; the runs print how many arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream as js;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use switchyard::daemon::Host;

use crate::report::{Figure, Target};
use crate::scenarios::{core, jetstream};
use crate::setup::Bench;
use crate::stats::median;

const CORE: &str = "telemetry, core 1M x 128B";
const JETSTREAM: &str = "telemetry, jetstream 200k x 128B";
/// Scrapers hitting `/metrics` back to back in the `on + 100 scrapers` runs.
const SCRAPERS: usize = 100;
/// The periodic scrape of the `on` runs, as Prometheus's scrape interval.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// Throughput with telemetry on, over throughput with it off, at least this.
const TARGET: f64 = 0.97;

/// Share of the traces the host starts that are exported in the `sampled` runs.
const SAMPLED: f64 = 0.01;

/// The settings compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `[admin] listen = "off"`, no export.
    Off,
    /// The admin listener, scraped once a second; no export.
    Metrics,
    /// As `Metrics`, plus spans exported for 1 % of the traces.
    Sampled,
    /// As `Metrics`, plus a span exported for every message.
    Every,
    /// As `Metrics`, with 100 scrapes at once every second.
    Scraped,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Off => "off".into(),
            Mode::Metrics => "metrics".into(),
            Mode::Sampled => format!("metrics + traces ({}% exported)", SAMPLED * 100.0),
            Mode::Every => "metrics + traces (all exported)".into(),
            Mode::Scraped => format!("metrics + {SCRAPERS} scrapers"),
        }
    }

    /// The `[admin]` and `[telemetry]` sections, in place of the preamble's `[admin]`.
    fn sections(self, sink: &Sink) -> String {
        let admin = "[admin]\nlisten = \"127.0.0.1:0\"\n\n";
        let otlp = |ratio: f64| {
            format!("{admin}[telemetry.otlp]\nendpoint = \"http://{}\"\nbatch_delay = \"200ms\"\nsample_ratio = {ratio}\n\n", sink.addr)
        };
        match self {
            Mode::Off => "[admin]\nlisten = \"off\"\n\n".into(),
            Mode::Metrics | Mode::Scraped => admin.into(),
            Mode::Sampled => otlp(SAMPLED),
            Mode::Every => otlp(1.0),
        }
    }

    /// Scrapes at once, every second: Prometheus's one, or a hundred.
    fn scrapers(self) -> usize {
        if self == Mode::Scraped { SCRAPERS } else { 1 }
    }
}

/// One host run under one setting: throughput, busy CPU per message, messages
/// lost, and what the telemetry did meanwhile.
struct Measured {
    mode: Mode,
    messages: usize,
    rate: f64,
    cpu_us: f64,
    dropped: u64,
    exported: Received,
    scrapes: Scrapes,
}

impl Measured {
    fn line(&self) -> String {
        let dropped = if self.dropped > 0 { format!(", {} DROPPED", self.dropped) } else { String::new() };
        format!("{} {:.0} msg/s ({:.2} µs CPU/msg{dropped})", self.mode.label(), self.rate, self.cpu_us)
    }

    /// What the sink received and how the scrapes went, for the runs with telemetry on.
    fn telemetry(&self) -> Option<String> {
        if self.mode == Mode::Off {
            return None;
        }
        let undecoded = match self.exported.undecoded {
            0 => String::new(),
            n => format!(", {n} request(s) not decoded"),
        };
        Some(format!(
            "    {}: sink received {} span(s) for {} message(s) in {} request(s), {:.1} KiB{undecoded}; {} scrape(s) of /metrics, {:.1} KiB, {} failed",
            self.mode.label(),
            self.exported.spans,
            self.messages,
            self.exported.requests,
            self.exported.bytes as f64 / 1024.0,
            self.scrapes.ok,
            self.scrapes.bytes as f64 / 1024.0,
            self.scrapes.failed,
        ))
    }
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    if !bench.host_side() {
        return Ok(Vec::new());
    }
    let outside = Outside::start()?;
    let sink = Sink::start(&outside)?;
    let mut figures = core_runs(bench, &outside, &sink).await?;
    figures.append(&mut jetstream_runs(bench, &outside, &sink).await?);
    Ok(figures)
}

async fn core_runs(bench: &Bench, outside: &Outside, sink: &Sink) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(core::FULL);
    let modes = [Mode::Off, Mode::Metrics, Mode::Sampled, Mode::Every, Mode::Scraped];
    let mut runs: Vec<Vec<Measured>> = modes.iter().map(|_| Vec::new()).collect();
    for i in 0..bench.runs {
        // Alternate so drift on the machine touches every setting alike.
        for (mode, runs) in modes.iter().zip(runs.iter_mut()) {
            let watch = Watch::begin(sink);
            let run = core::host_with(bench, n, &mode.sections(sink), |host| watch.scrapers(outside, host, *mode)).await?;
            runs.push(watch.end(*mode, n, run.rate, run.cpu_us, run.dropped));
        }
        report_run("core", i, &runs);
    }
    Ok(figures(CORE, "throughput", &modes, &runs))
}

async fn jetstream_runs(bench: &Bench, outside: &Outside, sink: &Sink) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(jetstream::FULL);
    let (body, config) = jetstream::body(bench)?;
    let js = js::new(bench.plain_client().await?);
    let modes = [Mode::Off, Mode::Metrics, Mode::Sampled, Mode::Every];
    let mut runs: Vec<Vec<Measured>> = modes.iter().map(|_| Vec::new()).collect();
    for i in 0..bench.runs {
        for (mode, runs) in modes.iter().zip(runs.iter_mut()) {
            jetstream::stage(&js, &config, jetstream::SUBJECT, n).await?;
            let watch = Watch::begin(sink);
            let (rate, cpu_us) =
                jetstream::host_with(bench, "jetstream", &body, n, &mode.sections(sink), |host| watch.scrapers(outside, host, *mode))
                    .await?;
            runs.push(watch.end(*mode, n, rate, cpu_us, 0));
        }
        report_run("jetstream", i, &runs);
    }
    Ok(figures(JETSTREAM, "throughput, ack each", &modes, &runs))
}

/// Run `i` of every setting, one line each, and what its telemetry did.
fn report_run(what: &str, i: usize, runs: &[Vec<Measured>]) {
    let lines: Vec<String> = runs.iter().map(|r| r[i].line()).collect();
    eprintln!("  telemetry {what} run {}: {}", i + 1, lines.join(", "));
    for line in runs.iter().filter_map(|r| r[i].telemetry()) {
        eprintln!("{line}");
    }
}

/// Each setting but `off` against `off` (the first).
fn figures(scenario: &'static str, figure: &str, modes: &[Mode], runs: &[Vec<Measured>]) -> Vec<Figure> {
    let rate = |runs: &[Measured]| median(&runs.iter().map(|r| r.rate).collect::<Vec<_>>());
    let off = rate(&runs[0]);
    modes
        .iter()
        .zip(runs)
        .skip(1)
        .map(|(mode, runs)| {
            Figure::new(scenario, format!("{figure}, {} vs off", mode.label()), "msg/s", rate(runs), off, Target::RatioAtLeast(TARGET))
        })
        .collect()
}

/// What one host run's telemetry did: the sink's counts when it began, and the
/// scrapes made during it.
struct Watch {
    before: Received,
    scrapes: Arc<ScrapeCounts>,
    sink: Arc<SinkCounts>,
}

impl Watch {
    fn begin(sink: &Sink) -> Watch {
        Watch { before: sink.counts.read(), scrapes: Arc::default(), sink: sink.counts.clone() }
    }

    /// Once the host is up: the scrapers `mode` calls for, stopped when dropped.
    fn scrapers(&self, outside: &Outside, host: &Host, mode: Mode) -> Scrapers {
        match host.admin_addr() {
            Some(addr) if mode != Mode::Off => Scrapers::start(outside, addr, mode.scrapers(), self.scrapes.clone()),
            _ => Scrapers(Vec::new()),
        }
    }

    /// After the host stopped (and so flushed its last spans).
    fn end(self, mode: Mode, messages: usize, rate: f64, cpu_us: f64, dropped: u64) -> Measured {
        let after = self.sink.read();
        let exported = Received {
            requests: after.requests - self.before.requests,
            bytes: after.bytes - self.before.bytes,
            spans: after.spans - self.before.spans,
            undecoded: after.undecoded - self.before.undecoded,
        };
        let scrapes = Scrapes {
            ok: self.scrapes.ok.load(Ordering::Relaxed),
            failed: self.scrapes.failed.load(Ordering::Relaxed),
            bytes: self.scrapes.bytes.load(Ordering::Relaxed),
        };
        Measured { mode, messages, rate, cpu_us, dropped, exported, scrapes }
    }
}

/// A runtime of its own (one worker thread) for the sink and the scrapers,
/// standing for the collector and Prometheus outside the host.
struct Outside(Option<tokio::runtime::Runtime>);

impl Outside {
    fn start() -> anyhow::Result<Outside> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-outside")
            .enable_all()
            .build()
            .context("starting the runtime for the OTLP sink and the scrapers")?;
        Ok(Outside(Some(runtime)))
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        match &self.0 {
            Some(runtime) => runtime.spawn(task),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Counts of what the sink received.
#[derive(Debug, Clone, Copy, Default)]
struct Received {
    requests: u64,
    bytes: u64,
    spans: u64,
    /// Requests whose body was not an OTLP protobuf trace export (their spans are not counted).
    undecoded: u64,
}

#[derive(Debug, Default)]
struct SinkCounts {
    requests: AtomicU64,
    bytes: AtomicU64,
    spans: AtomicU64,
    undecoded: AtomicU64,
}

impl SinkCounts {
    fn read(&self) -> Received {
        Received {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            undecoded: self.undecoded.load(Ordering::Relaxed),
        }
    }
}

/// An OTLP/HTTP collector that keeps nothing: `POST /v1/traces` answers 200
/// with an empty body and counts requests, bytes and spans.
struct Sink {
    addr: SocketAddr,
    counts: Arc<SinkCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    fn start(outside: &Outside) -> anyhow::Result<Sink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the OTLP sink")?;
        listener.set_nonblocking(true).context("the OTLP sink's listener")?;
        let addr = listener.local_addr().context("the OTLP sink's address")?;
        let counts = Arc::new(SinkCounts::default());
        let router = Router::new().route("/v1/traces", post(receive)).with_state(counts.clone());
        let task = outside.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    if let Err(err) = axum::serve(listener, router).await {
                        eprintln!("  the OTLP sink stopped: {err}");
                    }
                }
                Err(err) => eprintln!("  the OTLP sink could not listen: {err}"),
            }
        });
        Ok(Sink { addr, counts, task })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(counts): State<Arc<SinkCounts>>, body: Bytes) -> StatusCode {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match count_spans(&body) {
        Some(spans) => counts.spans.fetch_add(spans, Ordering::Relaxed),
        None => counts.undecoded.fetch_add(1, Ordering::Relaxed),
    };
    StatusCode::OK
}

/// The spans in an `ExportTraceServiceRequest`, read from its protobuf without
/// decoding the rest: `resource_spans` (field 1) hold `scope_spans` (field 2),
/// which hold `spans` (field 2). `None` if it is not well-formed protobuf.
fn count_spans(request: &[u8]) -> Option<u64> {
    let mut spans = 0;
    for resource in embedded(request, 1)? {
        for scope in embedded(resource, 2)? {
            spans += embedded(scope, 2)?.len() as u64;
        }
    }
    Some(spans)
}

/// The length-delimited fields numbered `number` in a protobuf message.
fn embedded(mut message: &[u8], number: u64) -> Option<Vec<&[u8]>> {
    let mut found = Vec::new();
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut message)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut message)?).ok()?,
            5 => 4,
            _ => return None,
        };
        let (field, rest) = message.split_at_checked(skip)?;
        if key & 7 == 2 && key >> 3 == number {
            found.push(field);
        }
        message = rest;
    }
    Some(found)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// How the scrapes of one run went.
#[derive(Debug, Clone, Copy, Default)]
struct Scrapes {
    ok: u64,
    failed: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct ScrapeCounts {
    ok: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

/// Tasks scraping `/metrics` on the outside runtime, aborted when dropped.
struct Scrapers(Vec<tokio::task::JoinHandle<()>>);

impl Scrapers {
    /// `scrapers` tasks, each scraping once per [`SCRAPE_INTERVAL`], all at
    /// the same moment: `scrapers` concurrent scrapes every interval.
    fn start(outside: &Outside, admin: SocketAddr, scrapers: usize, counts: Arc<ScrapeCounts>) -> Scrapers {
        let url: Arc<str> = format!("http://{admin}/metrics").into();
        let client = reqwest::Client::new();
        let tasks = (0..scrapers)
            .map(|_| {
                let (client, url, counts) = (client.clone(), url.clone(), counts.clone());
                outside.spawn(async move {
                    let mut tick = tokio::time::interval(SCRAPE_INTERVAL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        scrape(&client, &url, &counts).await;
                    }
                })
            })
            .collect();
        Scrapers(tasks)
    }
}

impl Drop for Scrapers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// One `GET /metrics`, read to the end; whether it succeeded.
async fn scrape(client: &reqwest::Client, url: &str, counts: &ScrapeCounts) -> bool {
    let body = async { client.get(url).send().await?.error_for_status()?.bytes().await };
    match body.await {
        Ok(body) => {
            counts.ok.fetch_add(1, Ordering::Relaxed);
            counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            true
        }
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field: key, length (a varint), bytes.
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2];
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn spans_are_counted_through_resource_and_scope() {
        // A span: trace_id (1), span_id (2), kind (6, varint), start time (7, fixed64).
        let mut span = field(1, &[7; 16]);
        span.extend(field(2, &[9; 8]));
        span.extend([6 << 3, 5, 7 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
        let mut scope = field(1, &field(1, b"switchyard")); // the instrumentation scope
        scope.extend(field(2, &span));
        scope.extend(field(2, &span));
        let mut resource = field(1, &field(1, b"attrs")); // the resource
        resource.extend(field(2, &scope));
        resource.extend(field(2, &scope));
        let mut request = field(1, &resource);
        request.extend(field(1, &resource));
        assert_eq!(count_spans(&request), Some(8));
        assert_eq!(count_spans(&[]), Some(0));
        assert_eq!(count_spans(&request[..request.len() - 1]), None);
    }
}
