//! The daemon: builds the subsystems from a runtime.toml, serves until a signal,
//! and shuts down within a deadline. Also dispatches the other subcommands.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, EmbeddedServer, StreamIndex};
use crate::cli::{Cli, Command};
use crate::commands;
use crate::config::{self, Config};
use crate::plugin::{Instance, Plugin, PluginSpec, Pool, Runtime};
use crate::policy::DeadLetters;
use crate::route::{Outputs, Route};
use crate::telemetry::Metrics;
use crate::workers::Workers;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config, nats_url } => serve(&config, nats_url).await.map(|()| ExitCode::SUCCESS),
        Command::Check { config } => commands::check::run(&config).await,
        Command::Invoke(args) => commands::invoke::run(args).await,
        Command::Pub { subject, data, msg, count, conn } => commands::client::publish(&conn, subject, data, &msg, count).await,
        Command::Req { subject, data, msg, timeout, conn } => commands::client::request(&conn, subject, data, &msg, timeout).await,
        Command::Sub { subject, count, conn } => commands::client::subscribe(&conn, subject, count).await,
        Command::Dlq { action, conn } => commands::dlq::run(&conn, action).await,
    }
}

/// `switchyard run`: serve until SIGINT or SIGTERM.
pub async fn serve(path: &Path, nats_url: Option<String>) -> anyhow::Result<()> {
    let mut config = config::load(path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    if nats_url.is_some() {
        config.nats.url = nats_url;
    }
    let host = Host::start(config).await?;
    println!("switchyard serving on {}", host.url);
    for line in &host.summary {
        println!("  {line}");
    }
    println!("ready: {} of {} route(s) running; Ctrl-C to stop", host.routes.len(), host.config.routes.len());
    wait_for_signal().await?;
    host.stop().await;
    Ok(())
}

/// A running host: its NATS connection, routes and workers. `serve` is this plus
/// signals; benchmarks and embedders use it directly.
pub struct Host {
    pub config: Config,
    pub url: String,
    pub metrics: Arc<Metrics>,
    pub routes: Vec<Arc<Route>>,
    /// One line per configured route: what it serves, or why it is not running.
    pub summary: Vec<String>,
    client: async_nats::Client,
    cancel: CancellationToken,
    workers: Workers,
    embedded: Option<EmbeddedServer>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("url", &self.url).field("routes", &self.routes.len()).finish_non_exhaustive()
    }
}

impl Host {
    /// Connect (or start nats-server), provision streams, load plugins, start routes.
    pub async fn start(config: Config) -> anyhow::Result<Host> {
        let metrics = Arc::new(Metrics::default());
        let embedded = match &config.nats.url {
            Some(_) => None,
            None => Some(EmbeddedServer::start(&config.nats.embedded).await?),
        };
        let url = config.nats.url.clone().or_else(|| embedded.as_ref().map(|s| s.url().to_owned())).unwrap_or_default();
        let client = broker::connect(&config.nats, &url, metrics.clone()).await?;
        let js = async_nats::jetstream::new(client.clone());
        broker::ensure_dead_letter_stream(&js, &config.dead_letter).await?;
        broker::ensure_streams(&js, &config.streams).await?;
        let out = Outputs {
            client: client.clone(),
            js: js.clone(),
            dead_letters: DeadLetters::new(js.clone(), &config.dead_letter.subject_prefix),
            streams: Arc::new(StreamIndex::new(js)),
            metrics: metrics.clone(),
        };

        let runtime = Runtime::new(Some(config.host.cache_dir.clone()))?;
        let mut plugins = load_plugins(&runtime, &config).await;
        let cancel = CancellationToken::new();
        let mut workers = Workers::default();
        let mut routes = Vec::new();
        let mut summary = Vec::new();
        for route_config in &config.routes {
            let name = route_config.name.get_ref();
            let Some((plugin, first)) = plugins.get_mut(route_config.plugin.get_ref()) else {
                summary.push(format!("route {name}: NOT STARTED (plugin `{}` failed to load, see above)", route_config.plugin.get_ref()));
                continue;
            };
            let first = match first.take() {
                Some(instance) => instance,
                None => Instance::new(plugin.clone()).await.map_err(|e| anyhow::anyhow!("plugin `{}`: {e:?}", plugin.spec.name))?,
            };
            let pool = Arc::new(Pool::new(plugin.clone(), first, route_config.concurrency));
            let route = Arc::new(Route::new(route_config.clone(), pool));
            route.clone().start(out.clone(), cancel.clone(), &mut workers).await.with_context(|| format!("starting route `{name}`"))?;
            summary.push(format!("route {name}: {} -> plugin {} ({})", route.describe(), plugin.spec.name, plugin.hash));
            routes.push(route);
        }
        Ok(Host { config, url, metrics, routes, summary, client, cancel, workers, embedded })
    }

    /// Stop taking messages, finish those in flight (up to the shutdown
    /// deadline), drain the connection, stop the embedded server.
    pub async fn stop(self) {
        tracing::info!("shutting down: finishing in-flight messages");
        self.cancel.cancel();
        let deadline = self.config.host.shutdown_timeout;
        let still_busy = self.workers.join_within(deadline).await;
        if !still_busy.is_empty() {
            tracing::warn!("shutdown deadline ({deadline:?}) passed; aborted: {}", still_busy.join(", "));
        }
        if let Err(err) = self.client.drain().await {
            tracing::warn!("draining the NATS connection: {err}");
        }
        let counters: Vec<String> = self.metrics.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect();
        tracing::info!("stopped; {}", counters.join(" "));
        if let Some(server) = self.embedded {
            server.stop().await;
        }
    }
}

/// Load every plugin once. A plugin that fails is logged and its routes are not
/// started; the others serve on.
async fn load_plugins(runtime: &Runtime, config: &Config) -> BTreeMap<String, (Arc<Plugin>, Option<Instance>)> {
    let mut loaded = BTreeMap::new();
    for (name, plugin_config) in &config.plugins {
        let result = match PluginSpec::from_config(name, plugin_config) {
            Ok(spec) => Plugin::load(runtime, spec).await.map_err(anyhow::Error::from),
            Err(err) => Err(err.context(format!("plugin `{name}`: encoding its config"))),
        };
        match result {
            Ok((plugin, instance)) => {
                tracing::info!(plugin = %name, version = %plugin.hash, "plugin loaded");
                loaded.insert(name.clone(), (plugin, Some(instance)));
            }
            Err(err) => tracing::error!("{err:#}"),
        }
    }
    loaded
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
