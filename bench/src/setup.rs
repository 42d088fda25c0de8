//! What every scenario shares: the nats-server the bench starts on loopback, the
//! scale and run count, client connections set up like the host's, in-process
//! hosts built from runtime.toml text, and the wait for a counter to reach a count.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchyard::broker::EmbeddedServer;
use switchyard::config::{EmbeddedConfig, defaults};
use switchyard::daemon::Host;

/// Every payload in the bench is this long.
pub(crate) const PAYLOAD_LEN: usize = 128;

/// The `[admin]` section of every bench config: the admin listener on a free
/// loopback port, as a deployment runs it.
pub(crate) const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n\n";

/// A counter that has not moved for this long has stopped: what it lacks was dropped.
const STALL: Duration = Duration::from_secs(5);

/// Which side of each scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    Both,
    Host,
    Raw,
}

pub(crate) struct Bench {
    pub scale: f64,
    pub runs: usize,
    pub side: Side,
    pub url: String,
    workspace: PathBuf,
    scratch: tempfile::TempDir,
    server: Option<EmbeddedServer>,
}

impl Bench {
    /// Start nats-server (JetStream on, loopback, a free port, data in a temp folder).
    pub(crate) async fn start(scale: f64, runs: usize, side: Side) -> anyhow::Result<Self> {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
        let scratch = tempfile::tempdir().context("creating the bench's temp folder")?;
        let binary = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from).unwrap_or_else(|| workspace.join("tools/nats/bin/nats-server"));
        anyhow::ensure!(binary.is_file(), "nats-server not found at `{}`: run `make tools` or set NATS_SERVER_BIN", binary.display());
        let server = EmbeddedServer::start(&EmbeddedConfig { binary: Some(binary), port: 0, data_dir: scratch.path().join("nats") })
            .await
            .context("starting nats-server for the bench")?;
        Ok(Self { scale, runs, side, url: server.url().to_owned(), workspace, scratch, server: Some(server) })
    }

    pub(crate) async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    pub(crate) fn host_side(&self) -> bool {
        self.side != Side::Raw
    }

    pub(crate) fn raw_side(&self) -> bool {
        self.side != Side::Host
    }

    /// `full` scaled by `--scale`, at least 100.
    pub(crate) fn count(&self, full: usize) -> usize {
        ((full as f64 * self.scale).round() as usize).max(100)
    }

    /// A reference plugin's .wasm, built by `make plugins`.
    pub(crate) fn plugin(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.workspace.join("target/wasm32-wasip1/release").join(format!("{name}.wasm"));
        anyhow::ensure!(path.is_file(), "{} is missing: run `make plugins` (make bench does)", path.display());
        Ok(path)
    }

    /// Compiled plugins are cached across bench runs, as `switchyard run` caches them.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.workspace.join("target/bench/cache")
    }

    /// The `[nats]`, `[host]` and `[admin]` sections every bench config starts with.
    pub(crate) fn preamble(&self) -> String {
        self.preamble_with(ADMIN)
    }

    /// The `[nats]` and `[host]` sections, then `sections` in place of [`ADMIN`]
    /// (the telemetry scenario's `[admin]` and `[telemetry]`).
    fn preamble_with(&self, sections: &str) -> String {
        format!("[nats]\nurl = \"{}\"\n\n[host]\ncache_dir = \"{}\"\n\n{sections}", self.url, self.cache_dir().display())
    }

    /// Write `body` (after the preamble) as `<name>.toml` and return its path.
    pub(crate) fn write_config(&self, name: &str, body: &str) -> anyhow::Result<PathBuf> {
        self.write_config_with(name, ADMIN, body)
    }

    /// `body` written as [`Bench::write_config`] does, and the config it loads
    /// as (for a raw side with the same settings).
    pub(crate) fn loaded_config(&self, name: &str, body: String) -> anyhow::Result<(String, switchyard::config::Config)> {
        let path = self.write_config(name, &body)?;
        let config = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
        Ok((body, config))
    }

    /// [`Bench::write_config`] with `sections` in place of [`ADMIN`].
    pub(crate) fn write_config_with(&self, name: &str, sections: &str, body: &str) -> anyhow::Result<PathBuf> {
        let path = self.scratch.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("{}{body}", self.preamble_with(sections)))
            .with_context(|| format!("writing `{}`", path.display()))?;
        Ok(path)
    }

    /// A host in this process, serving `body`.
    pub(crate) async fn host(&self, name: &str, body: &str) -> anyhow::Result<Host> {
        self.host_with(name, ADMIN, body).await
    }

    /// [`Bench::host`] with `sections` in place of [`ADMIN`].
    pub(crate) async fn host_with(&self, name: &str, sections: &str, body: &str) -> anyhow::Result<Host> {
        let path = self.write_config_with(name, sections, body)?;
        let loaded = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("bench config `{name}`:\n{problems}"))?;
        Host::start(loaded.config, None).await.with_context(|| format!("starting the host for `{name}`"))
    }

    /// A client set up as the host sets up its own (same subscription capacity),
    /// counting slow-consumer events, which are the only sign of dropped messages.
    pub(crate) async fn client(&self, slow: Arc<AtomicU64>) -> anyhow::Result<async_nats::Client> {
        async_nats::ConnectOptions::new()
            .subscription_capacity(defaults::subscription_capacity())
            .event_callback(move |event| {
                let slow = slow.clone();
                async move {
                    if let async_nats::Event::SlowConsumer(_) = event {
                        slow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// A plain client, for publishers and requesters.
    pub(crate) async fn plain_client(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(&self.url).await.with_context(|| format!("connecting to {}", self.url))
    }
}

pub(crate) fn payload() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; PAYLOAD_LEN])
}

/// When a counter first moved and when it reached its target (or stopped short),
/// with the machine's busy CPU time (all processes: bench, host, nats-server) at
/// those moments.
#[derive(Debug)]
pub(crate) struct Progress {
    pub first: Option<Instant>,
    pub last: Instant,
    pub reached: u64,
    pub cpu_at_first: f64,
    pub cpu_at_last: f64,
}

impl Progress {
    /// Busy CPU µs per message from the first message to the last, machine-wide.
    pub(crate) fn cpu_us_per_message(&self) -> f64 {
        (self.cpu_at_last - self.cpu_at_first) * 1e6 / self.reached.max(1) as f64
    }
}

/// CPU seconds this process has used so far (user + system, /proc/self/stat):
/// the bench's own publisher plus the side it measures in process.
pub(crate) fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // The command name is in parentheses and may hold spaces: count fields after it.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return f64::NAN };
    let fields: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
    if fields.len() == 2 { (fields[0] + fields[1]) / 100.0 } else { f64::NAN }
}

/// Busy CPU seconds of the whole machine so far (/proc/stat: everything but idle
/// and iowait), to tell a side that saturates the cores from one that waits.
pub(crate) fn cpu_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return f64::NAN };
    let Some(line) = stat.lines().next() else { return f64::NAN };
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …; USER_HZ is 100 on Linux.
    let busy: f64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).take(7).map(|(_, t)| t).sum();
    busy / 100.0
}

/// Poll `counter` every millisecond until it reaches `target` or stalls. Hosts
/// and raw baselines are both measured this way, so the polling error (about a
/// millisecond at each end) is the same on both sides.
pub(crate) async fn wait_for(counter: impl Fn() -> u64, target: u64) -> Progress {
    let mut first = None;
    let mut cpu_at_first = cpu_busy_seconds();
    let mut seen = 0;
    let mut moved = Instant::now();
    loop {
        let now = counter();
        let at = Instant::now();
        if now > 0 && first.is_none() {
            first = Some(at);
            cpu_at_first = cpu_busy_seconds();
        }
        if now >= target {
            return Progress { first, last: at, reached: now, cpu_at_first, cpu_at_last: cpu_busy_seconds() };
        }
        if now != seen {
            seen = now;
            moved = at;
        } else if at.duration_since(moved) > STALL {
            return Progress { first, last: moved, reached: now, cpu_at_first, cpu_at_last: cpu_busy_seconds() };
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
