//! The running daemon: the NATS connection (or the embedded server), the loaded
//! plugin versions and the running routes. Started as a reload from nothing
//! ([`plan`] decides, [`apply`] carries it out), reloaded in place by the same
//! code, stopped within a deadline.

mod apply;
mod gauges;
mod plan;
#[cfg(test)]
mod plan_tests;
mod rollout;
mod routes;
mod status;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::admin::{self, Admin};
use crate::broker::{self, EmbeddedServer, StreamIndex};
use crate::config::{Config, ServerList};
use crate::config::{Listen, LogFormat};
use crate::plugin::{CompileLimits, Plugin, Runtime};
use crate::policy::DeadLetters;
use crate::reload::ReloadReport;
use crate::route::Outputs;
use crate::telemetry::health::Phase;
use crate::telemetry::otlp::SpanExporter;
use crate::telemetry::{Health, Metrics};

use apply::Occasion;
pub(crate) use routes::RunningRoute;

/// Where the config came from, so a reload can read it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// `switchyard run`'s flags, which win over the file on every reload too.
    pub overrides: Overrides,
}

/// What `switchyard run`'s flags set instead of the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--nats-url`.
    pub nats_url: Option<ServerList>,
    /// `--admin-listen`.
    pub admin_listen: Option<Listen>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    /// `config` as the flags amend it.
    pub fn apply(&self, config: &mut Config) {
        if self.nats_url.is_some() {
            config.nats.url.clone_from(&self.nats_url);
        }
        if let Some(listen) = self.admin_listen {
            config.admin.listen = listen;
        }
        if let Some(format) = self.log_format {
            config.telemetry.log_format = format;
        }
    }
}

/// A running host. `serve` is this plus signals, file watching and control
/// requests; benchmarks and embedders use it directly.
pub struct Host {
    pub(crate) config: Config,
    pub(crate) source: Option<ConfigSource>,
    pub(crate) url: String,
    pub metrics: Arc<Metrics>,
    pub(crate) started_at: SystemTime,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) out: Outputs,
    /// The version of each plugin new messages go to.
    pub(crate) plugins: BTreeMap<String, Arc<Plugin>>,
    pub(crate) routes: BTreeMap<String, RunningRoute>,
    pub(crate) last_reload: Option<ReloadReport>,
    pub health: Arc<Health>,
    /// The routes the metrics read at scrape time; set after every apply.
    live: Arc<gauges::LiveRoutes>,
    /// Each live route's last ten seconds, for `status`, kept up by `sampler`.
    windows: Arc<window::Windows>,
    sampler: window::Sampler,
    admin: Option<Admin>,
    client: async_nats::Client,
    embedded: Option<EmbeddedServer>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("url", &self.url).field("routes", &self.routes.len()).finish_non_exhaustive()
    }
}

/// How long shutdown waits for the server to confirm the last acks and publishes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Host {
    /// Connect (or start nats-server) and set up the dead-letter stream; then
    /// apply `config` as a reload from nothing: streams, plugins, routes.
    pub async fn start(config: Config, source: Option<ConfigSource>) -> anyhow::Result<Host> {
        let live = Arc::new(gauges::LiveRoutes::default());
        let metrics = Arc::new(Metrics::new(vec![Box::new(live.clone())]));
        let health = Arc::new(Health::default());
        // First: a port in use stops the host before it connects anywhere.
        let admin = match config.admin.listen {
            Listen::On(addr) => Some(admin::start(addr, metrics.clone(), health.clone()).await?),
            Listen::Off => None,
        };
        let embedded = match &config.nats.url {
            Some(_) => None,
            None => Some(EmbeddedServer::start(&config.nats.embedded).await?),
        };
        let urls = match (&config.nats.url, &embedded) {
            (Some(list), _) => list.0.clone(),
            (None, Some(server)) => vec![server.url().to_owned()],
            (None, None) => Vec::new(),
        };
        let url = urls.join(",");
        // A server still starting, a cluster without a JetStream leader yet, or
        // hosts racing to create the same stream are waited out, up to here.
        let deadline = Instant::now() + config.nats.startup_timeout;
        let client = broker::connect(&config.nats, &urls, deadline, metrics.clone()).await?;
        let spans = match &config.telemetry.otlp {
            Some(otlp) => Some(Arc::new(SpanExporter::start(otlp).await?)),
            None => None,
        };
        let js = async_nats::jetstream::new(client.clone());
        broker::ensure_dead_letter_stream(&js, &config.dead_letter, deadline).await?;
        let out = Outputs {
            client: client.clone(),
            acks: broker::Acks::start(client.clone()),
            js: js.clone(),
            dead_letters: DeadLetters::new(js.clone(), &config.dead_letter.subject_prefix),
            streams: Arc::new(StreamIndex::new(js)),
            metrics: metrics.clone(),
            health: health.clone(),
            spans,
            consumer_info_interval: config.admin.consumer_info_interval,
            startup_timeout: config.nats.startup_timeout,
        };
        if let Some(admin) = &admin {
            admin.connected(client.clone());
        }
        let limits = CompileLimits::from(&config.host);
        let runtime = Arc::new(Runtime::new(Some(config.host.cache_dir.clone()))?.with_limits(limits));
        // Plugins learn the server's payload limit at publish() time, not at send time.
        runtime.set_max_payload(client.server_info().max_payload);
        runtime.connect(client.clone(), out.metrics.clone());
        let windows = Arc::new(window::Windows::default());
        let mut host = Host {
            config: Config::default(),
            source,
            url,
            metrics,
            started_at: SystemTime::now(),
            runtime,
            out,
            plugins: BTreeMap::new(),
            routes: BTreeMap::new(),
            last_reload: None,
            health,
            sampler: window::Sampler::spawn(windows.clone(), live.clone()),
            windows,
            live,
            admin,
            client,
            embedded,
        };
        // Startup is a reload from nothing: the same plan, the same steps.
        let mut report = ReloadReport::new("startup");
        host.apply(config, Occasion::Start { deadline }, &mut report).await?;
        host.health.set_phase(Phase::Serving);
        Ok(host)
    }

    /// One line per configured route: what it serves, or why it is not running.
    pub fn summary(&self) -> Vec<String> {
        self.config
            .routes
            .iter()
            .map(|route| {
                let name = route.name.get_ref();
                match self.routes.get(name) {
                    Some(running) => running.describe(),
                    None => format!("route {name}: NOT STARTED (plugin `{}` failed to load, see above)", route.plugin.get_ref()),
                }
            })
            .collect()
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, unless `[admin] listen = "off"`.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// After an apply: what the metrics read, and which routes are down.
    fn routes_changed(&self) {
        self.live.set(self.routes.values().map(|running| running.route.clone()).collect());
        // A new route's first sample now, not at the next tick: what it handles
        // from here on is in its window.
        self.windows.sample(self.routes.values().map(|running| (running.route.name.as_str(), &running.route.metrics)));
        let configured: Vec<String> = self.config.routes.iter().map(|r| r.name.get_ref().clone()).collect();
        self.health.routes_not_started(&configured, |name| self.routes.contains_key(name));
    }

    /// Routes running now.
    pub fn running_routes(&self) -> usize {
        self.routes.len()
    }

    /// Stop taking messages, finish those in flight (up to the shutdown
    /// deadline), drain the connection, stop the embedded server.
    pub async fn stop(self) {
        tracing::info!("shutting down: finishing in-flight messages");
        self.sampler.stop();
        self.health.set_phase(Phase::Draining);
        let deadline = self.config.host.shutdown_timeout;
        let stops = self.routes.into_values().map(|route| route.stop(deadline));
        let still_busy: Vec<String> = futures::future::join_all(stops).await.into_iter().flatten().collect();
        if !still_busy.is_empty() {
            tracing::warn!("shutdown deadline ({deadline:?}) passed; aborted: {}", still_busy.join(", "));
        }
        // The last acks may still be queued (`broker::Acks`), and the last acks
        // and publishes in the client's write buffer:
        // `drain` only queues the unsubscribes and returns, so wait for the
        // server's PONG to everything first, or a finished message's ack can be
        // lost with the process and the message handled again elsewhere.
        let flushed = async {
            self.out.acks.flush().await;
            self.client.flush().await
        };
        match tokio::time::timeout(FLUSH_TIMEOUT, flushed).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("flushing the NATS connection: {err}; the last acks may be lost"),
            Err(_) => tracing::warn!("flushing the NATS connection took over {FLUSH_TIMEOUT:?}; the last acks may be lost"),
        }
        if let Err(err) = self.client.drain().await {
            tracing::warn!("draining the NATS connection: {err}");
        }
        let counters: Vec<String> = self.metrics.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
        tracing::info!("stopped; {}", counters.join(" "));
        if let Some(server) = self.embedded {
            server.stop().await;
        }
        if let Some(spans) = self.out.spans {
            spans.shutdown().await;
        }
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
    }
}
