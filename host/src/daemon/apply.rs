//! Applying a config to the running host — the one place plugins are loaded and
//! routes started, at startup (a plan from nothing) and on every reload.
//!
//! On a reload a config with errors is refused whole; a plugin version that
//! fails to load is refused alone and its old version keeps serving. Nothing in
//! flight is nak'd, dead-lettered or dropped: a replaced route's new workers
//! start before the old ones drain. At startup the same steps run, but a stream
//! or route that cannot be set up stops the host instead.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use std::time::Instant;

use super::plan::{self, Plan, RouteAction, Running, Version};
use super::{Host, RunningRoute};
use crate::broker;
use crate::config::{self, Config};
use crate::plugin::{Instance, Plugin, file_hash};
use crate::reload::ReloadReport;
use crate::telemetry::ReloadResult;

/// Why a config is applied, which decides what a failed step means.
#[derive(Debug, Clone, Copy)]
pub(super) enum Occasion {
    /// Nothing runs yet. A stream or route that cannot be set up is a startup
    /// error; streams are set up within the startup deadline that the
    /// connection was given.
    Start { deadline: Instant },
    /// The host serves on whatever happens: each failure is refused in the report.
    Reload,
}

impl Occasion {
    /// A stream, route or barrier failed: fatal at startup, refused on a reload.
    fn fail(self, report: &mut ReloadReport, what: &str, err: anyhow::Error) -> anyhow::Result<()> {
        match self {
            Occasion::Start { .. } => Err(err),
            Occasion::Reload => {
                report.refused.push(format!("{what}{err:#}"));
                Ok(())
            }
        }
    }

    /// A plugin version did not load: its routes do not start (startup) or keep
    /// the old version (reload). Logged at startup, where nothing else reports it.
    fn plugin_refused(self, report: &mut ReloadReport, refusal: String) {
        match self {
            Occasion::Start { .. } => tracing::error!("{refusal}"),
            Occasion::Reload => report.refused.push(refusal),
        }
    }
}

impl Host {
    /// Reload from the config file. Logs and returns what happened.
    pub async fn reload(&mut self, cause: &str) -> ReloadReport {
        let mut report = ReloadReport::new(cause);
        match self.read_config() {
            Ok(config) => {
                // On a reload every failure is refused in the report; this is a backstop.
                if let Err(err) = self.apply(config, Occasion::Reload, &mut report).await {
                    report.refused.push(format!("{err:#}"));
                }
            }
            Err(problems) => {
                report.ok = false;
                report.refused.push(problems);
            }
        }
        if report.ok && report.refused.is_empty() {
            if !report.changes.is_empty() {
                tracing::info!(cause, "{}", report.summary());
            }
        } else {
            self.metrics.reload(ReloadResult::Refused);
            tracing::error!(cause, "{}", report.summary());
        }
        if !report.changes.is_empty() {
            self.metrics.reload(ReloadResult::Applied);
        }
        self.last_reload = Some(report.clone());
        report
    }

    fn read_config(&self) -> Result<Config, String> {
        let Some(source) = &self.source else {
            return Err("this host was not started from a config file".into());
        };
        let mut config = config::load(&source.path).map_err(|problems| problems.to_string())?.config;
        source.overrides.apply(&mut config);
        Ok(config)
    }

    /// Make the host run `new`: plan the change, set up streams, load the new
    /// plugin versions (off the message path), then start, restart, swap or stop
    /// routes. What changed and what was refused go into `report`.
    pub(super) async fn apply(&mut self, new: Config, occasion: Occasion, report: &mut ReloadReport) -> anyhow::Result<()> {
        self.fetch_objects(&new, occasion, report).await;
        let mut plan = self.plan(&new, occasion).await;
        if plan.needs_restart {
            report.changes.push("[nats], [dead_letter], [host], [admin] and [telemetry] changes take effect at the next restart".into());
        }
        let deadline = match occasion {
            Occasion::Start { deadline } => deadline,
            Occasion::Reload => Instant::now() + new.nats.startup_timeout,
        };
        if !plan.streams.is_empty() {
            match broker::ensure_streams(&self.out.js, &plan.streams, deadline).await {
                Ok(()) => report.changes.extend(plan.streams.iter().map(|s| format!("stream `{}` set up", s.name.get_ref()))),
                Err(err) => occasion.fail(report, "", err)?,
            }
        }
        if !plan.buckets.is_empty() {
            match broker::ensure_buckets(&self.out.js, &plan.buckets, deadline).await {
                Ok(()) => report.changes.extend(plan.buckets.iter().map(|b| format!("bucket `{}` set up", b.name.get_ref()))),
                Err(err) => occasion.fail(report, "", err)?,
            }
        }
        self.load_and_start(&mut plan, &new, occasion, report).await?;
        // The server has every new subscription before the host says it serves.
        if let Err(err) = broker::barrier(&self.out.client).await {
            occasion.fail(report, "", err)?;
        }
        for name in &plan.removed_plugins {
            self.plugins.remove(name);
        }
        self.config = new;
        self.routes_changed();
        Ok(())
    }

    /// Bring the host's copy of every plugin kept in an object store up to date,
    /// so the plan sees a new version as it sees a changed file. One that cannot
    /// be fetched is refused; a copy from before keeps serving.
    async fn fetch_objects(&self, new: &Config, occasion: Occasion, report: &mut ReloadReport) {
        for (name, plugin) in &new.plugins {
            let Some(source) = &plugin.source else { continue };
            match broker::objects::fetch(&self.out.js, source.get_ref(), plugin.path.get_ref()).await {
                Ok(true) => tracing::info!(plugin = %name, source = %source.get_ref(), "fetched a new version"),
                Ok(false) => {}
                Err(err) => occasion.plugin_refused(report, format!("plugin `{name}`: {err:#}")),
            }
        }
    }

    /// The plan from what runs now to `new`. The only IO: hashing the files of
    /// the plugins loaded now, to see which of them changed on disk.
    async fn plan(&self, new: &Config, occasion: Occasion) -> Plan {
        let mut hashes = BTreeMap::new();
        for (name, plugin) in new.plugins.iter().filter(|(name, _)| self.plugins.contains_key(*name)) {
            if let Ok(hash) = file_hash(plugin.path.get_ref()).await {
                hashes.insert(name.clone(), hash);
            }
        }
        let running = Running {
            config: matches!(occasion, Occasion::Reload).then_some(&self.config),
            plugins: self.plugins.iter().map(|(name, p)| (name.as_str(), Version { spec: &p.spec, hash: &p.hash })).collect(),
            routes: self.routes.iter().map(|(name, route)| (name.as_str(), &route.config)).collect(),
        };
        plan::diff(&running, new, &hashes)
    }

    /// Load the plan's plugin versions, several at once, and start (or swap)
    /// each route as soon as its plugin is ready: a plugin slow to compile holds
    /// back its own routes only. A version that loads replaces the current one
    /// (running routes get it by a swap); one that does not is refused and taken
    /// out of the plan. Then the removed routes stop.
    async fn load_and_start(&mut self, plan: &mut Plan, new: &Config, occasion: Occasion, report: &mut ReloadReport) -> anyhow::Result<()> {
        let mut loading = BTreeSet::new();
        let mut jobs = Vec::new();
        for step in &plan.plugins {
            match &step.spec {
                Ok(spec) => {
                    let (runtime, spec, name) = (self.runtime.clone(), spec.clone(), step.name.clone());
                    loading.insert(step.name.clone());
                    jobs.push(async move { (name, Plugin::load(&runtime, spec).await) });
                }
                // Already out of the plan: `diff` knew it could not load.
                Err(refusal) => occasion.plugin_refused(report, refusal.clone()),
            }
        }
        // Each load may run a compiler process: no more at once than cores.
        let parallel = std::thread::available_parallelism().map_or(2, usize::from);
        let mut loads = futures::stream::iter(jobs).buffer_unordered(parallel);
        // The instance each loaded version proved itself with seeds the first pool that uses it.
        let mut spares = BTreeMap::new();
        self.apply_routes(plan, new, &mut spares, occasion, report, |plugin| !loading.contains(plugin)).await?;
        while let Some((name, loaded)) = loads.next().await {
            match loaded {
                Ok((plugin, instance)) => {
                    let was = plan.plugins.iter().find(|step| step.name == name).and_then(|step| step.previous.clone());
                    report.changes.push(format!("plugin `{name}`: version {} -> {}", was.as_deref().unwrap_or("none"), plugin.hash));
                    match &was {
                        None => tracing::info!(plugin = %name, version = %plugin.hash, "plugin loaded"),
                        Some(was) => tracing::info!(plugin = %name, version = %plugin.hash, previous = %was, "new plugin version loaded"),
                    }
                    self.plugins.insert(name.clone(), plugin);
                    spares.insert(name.clone(), instance);
                }
                Err(err) => {
                    occasion.plugin_refused(report, err.to_string());
                    plan.not_loaded(&name);
                }
            }
            self.apply_routes(plan, new, &mut spares, occasion, report, |plugin| plugin == name).await?;
        }
        let deadline = new.host.shutdown_timeout;
        for name in &plan.removed_routes {
            if let Some(old) = self.routes.remove(name) {
                old.stop(deadline).await;
                self.metrics.forget_route(name);
                report.changes.push(format!("route `{name}` removed (drained)"));
            }
        }
        Ok(())
    }

    /// Start, restart or swap as planned each route whose plugin `of` selects.
    async fn apply_routes(
        &mut self,
        plan: &Plan,
        new: &Config,
        spares: &mut BTreeMap<String, Instance>,
        occasion: Occasion,
        report: &mut ReloadReport,
        of: impl Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = new.host.shutdown_timeout;
        for step in plan.routes.iter().filter(|step| of(&step.plugin)) {
            let name = &step.name;
            let plugin = self.plugins.get(&step.plugin).cloned();
            match (step.action, plugin) {
                (RouteAction::Keep, _) => {}
                (RouteAction::Swap, Some(version)) => {
                    if let Some(running) = self.routes.get(name) {
                        running.route.pool.swap(version, spares.remove(&step.plugin));
                    }
                }
                (RouteAction::Add | RouteAction::Restart, Some(plugin)) => {
                    let first = spares.remove(&step.plugin);
                    match RunningRoute::start(step.config.clone(), plugin, first, &self.out).await {
                        Ok(started) => {
                            // The new workers run before the old ones drain: no gap.
                            if let Some(old) = self.routes.insert(name.clone(), started) {
                                old.stop(deadline).await;
                            }
                            let what = if step.action == RouteAction::Add { "added" } else { "replaced" };
                            report.changes.push(format!("route `{name}` {what}"));
                        }
                        Err(err) => occasion.fail(report, &format!("route `{name}`: "), err)?,
                    }
                }
                // At startup the summary says NOT STARTED; on a reload, say why here.
                (RouteAction::NotStarted, _) | (_, None) => {
                    if matches!(occasion, Occasion::Reload) {
                        report.refused.push(format!("route `{name}`: plugin `{}` is not loaded", step.plugin));
                    }
                }
            }
        }
        Ok(())
    }
}
