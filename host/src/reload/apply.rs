//! Applying a reload: read runtime.toml again, load the plugin versions that
//! changed (off the message path), then swap versions into the routes' pools and
//! add, replace or remove only the routes whose config changed.
//!
//! A config with errors is refused whole; a plugin version that fails to load is
//! refused alone and its old version keeps serving. Nothing in flight is nak'd,
//! dead-lettered or dropped: a replaced route's new workers start before the old
//! ones drain.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ReloadReport;
use crate::broker;
use crate::config::{self, Config};
use crate::daemon::{Host, RunningRoute};
use crate::plugin::{Instance, Plugin, PluginSpec, file_hash};
use crate::telemetry::Metrics;

impl Host {
    /// Reload from the config file. Logs and returns what happened.
    pub async fn reload(&mut self, cause: &str) -> ReloadReport {
        let mut report = ReloadReport::new(cause);
        match self.read_config() {
            Ok(config) => self.apply(config, &mut report).await,
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
            Metrics::bump(&self.metrics.reloads_refused);
            tracing::error!(cause, "{}", report.summary());
        }
        if !report.changes.is_empty() {
            Metrics::bump(&self.metrics.reloads);
        }
        self.last_reload = Some(report.clone());
        report
    }

    fn read_config(&self) -> Result<Config, String> {
        let Some(source) = &self.source else {
            return Err("this host was not started from a config file".into());
        };
        let mut config = config::load(&source.path).map_err(|problems| problems.to_string())?.config;
        if source.nats_url.is_some() {
            config.nats.url.clone_from(&source.nats_url);
        }
        Ok(config)
    }

    async fn apply(&mut self, new: Config, report: &mut ReloadReport) {
        if new.nats != self.config.nats || new.dead_letter != self.config.dead_letter || new.host != self.config.host {
            report.changes.push("[nats], [dead_letter] and [host] changes take effect at the next restart".into());
        }
        let changed_streams: Vec<_> = new.streams.iter().filter(|s| !self.config.streams.contains(s)).cloned().collect();
        if !changed_streams.is_empty() {
            let deadline = std::time::Instant::now() + new.nats.startup_timeout;
            match broker::ensure_streams(&self.out.js, &changed_streams, deadline).await {
                Ok(()) => report.changes.extend(changed_streams.iter().map(|s| format!("stream `{}` set up", s.name.get_ref()))),
                Err(err) => report.refused.push(format!("{err:#}")),
            }
        }

        let mut spares = self.load_changed_plugins(&new, report).await;
        self.apply_routes(&new, &mut spares, report).await;
        if let Err(err) = broker::barrier(&self.out.client).await {
            report.refused.push(format!("{err:#}"));
        }
        self.plugins.retain(|name, _| new.plugins.contains_key(name));
        self.config = new;
    }

    /// Load every plugin whose file or settings changed. Returns the new versions
    /// with the instance each proved itself with; failures are refused.
    async fn load_changed_plugins(&mut self, new: &Config, report: &mut ReloadReport) -> BTreeMap<String, (Arc<Plugin>, Option<Instance>)> {
        let mut loaded = BTreeMap::new();
        for (name, plugin_config) in &new.plugins {
            let spec = match PluginSpec::from_config(name, plugin_config) {
                Ok(spec) => spec,
                Err(err) => {
                    report.refused.push(format!("plugin `{name}`: {err:#}"));
                    continue;
                }
            };
            if let Some(current) = self.plugins.get(name)
                && current.spec == spec
                && file_hash(&spec.path).await.is_ok_and(|hash| hash == current.hash)
            {
                continue;
            }
            match Plugin::load(&self.runtime, spec).await {
                Ok((plugin, instance)) => {
                    let was = self.plugins.get(name).map_or_else(|| "none".to_owned(), |p| p.hash.clone());
                    report.changes.push(format!("plugin `{name}`: version {was} -> {}", plugin.hash));
                    tracing::info!(plugin = %name, version = %plugin.hash, previous = %was, "new plugin version loaded");
                    self.plugins.insert(name.clone(), plugin.clone());
                    loaded.insert(name.clone(), (plugin, Some(instance)));
                }
                Err(err) => report.refused.push(err.to_string()),
            }
        }
        loaded
    }

    async fn apply_routes(
        &mut self,
        new: &Config,
        versions: &mut BTreeMap<String, (Arc<Plugin>, Option<Instance>)>,
        report: &mut ReloadReport,
    ) {
        let deadline = new.host.shutdown_timeout;
        for route in &new.routes {
            let name = route.name.get_ref().clone();
            let plugin_name = route.plugin.get_ref();
            let Some(plugin) = self.plugins.get(plugin_name).cloned() else {
                report.refused.push(format!("route `{name}`: plugin `{plugin_name}` is not loaded"));
                continue;
            };
            let fresh = versions.get_mut(plugin_name);
            match self.routes.get(&name) {
                Some(running) if running.route.config == *route => {
                    // Same route, maybe a new plugin version: swap it in place.
                    if let Some((version, first)) = fresh
                        && !Arc::ptr_eq(&running.route.pool.plugin(), version)
                    {
                        running.route.pool.swap(version.clone(), first.take());
                    }
                }
                existing => {
                    let first = fresh.and_then(|(_, first)| first.take());
                    let what = if existing.is_some() { "replaced" } else { "added" };
                    match RunningRoute::start(route.clone(), plugin, first, &self.out).await {
                        Ok(started) => {
                            // The new workers run before the old ones drain: no gap.
                            if let Some(old) = self.routes.insert(name.clone(), started) {
                                old.stop(deadline).await;
                            }
                            report.changes.push(format!("route `{name}` {what}"));
                        }
                        Err(err) => report.refused.push(format!("route `{name}`: {err:#}")),
                    }
                }
            }
        }
        let removed: Vec<String> =
            self.routes.keys().filter(|name| !new.routes.iter().any(|r| r.name.get_ref() == *name)).cloned().collect();
        for name in removed {
            if let Some(old) = self.routes.remove(&name) {
                old.stop(deadline).await;
                report.changes.push(format!("route `{name}` removed (drained)"));
            }
        }
    }
}
