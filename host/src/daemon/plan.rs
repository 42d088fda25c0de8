//! What a new config changes, worked out before anything is touched: which
//! plugin versions to load, which streams to set up, and what each route needs
//! (a start, a restart, a version swap, or nothing).
//!
//! Pure — no files, no NATS — so startup (a plan from nothing) and every reload
//! are decided by the same code, and that code is unit-tested without a server.
//! `daemon::apply` carries the plan out.

use std::collections::BTreeMap;

use crate::config::{BucketConfig, Config, RouteConfig, StreamConfig};
use crate::plugin::PluginSpec;

/// The running state, as far as it decides what a new config changes: no
/// handles, only what was loaded and started, and from which config.
#[derive(Debug, Default)]
pub(super) struct Running<'a> {
    /// The config last applied; `None` at startup, when nothing runs yet.
    pub config: Option<&'a Config>,
    /// The version of each plugin loaded now.
    pub plugins: BTreeMap<&'a str, Version<'a>>,
    /// The config each running route was started with.
    pub routes: BTreeMap<&'a str, &'a RouteConfig>,
}

/// One loaded plugin version: what it was loaded with and the file's hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Version<'a> {
    pub spec: &'a PluginSpec,
    pub hash: &'a str,
}

/// Everything a new config asks for, in the order `apply` carries it out.
#[derive(Debug)]
pub(super) struct Plan {
    /// `[nats]`, `[dead_letter]`, `[host]`, `[admin]` or `[telemetry]` changed: they apply only at the next restart.
    pub needs_restart: bool,
    /// Streams that are new or whose settings changed.
    pub streams: Vec<StreamConfig>,
    /// Key-value buckets that are new or whose settings changed.
    pub buckets: Vec<BucketConfig>,
    /// Plugins that are new, or whose settings or file changed: a version to load.
    pub plugins: Vec<PluginStep>,
    /// Every configured route, in config order, with what it needs.
    pub routes: Vec<RouteStep>,
    /// Running routes the config no longer has: drained and stopped.
    pub removed_routes: Vec<String>,
    /// Loaded plugins the config no longer has: forgotten once their routes are gone.
    pub removed_plugins: Vec<String>,
}

/// A plugin version to load.
#[derive(Debug)]
pub(super) struct PluginStep {
    pub name: String,
    /// The hash of the version running now; `None` for a new plugin.
    pub previous: Option<String>,
    /// What to load. `Err` (the refusal) when its `config` table cannot be
    /// encoded for `init`: refused like a version that fails to load.
    pub spec: Result<PluginSpec, String>,
}

/// One configured route and what applying the plan does to it.
#[derive(Debug)]
pub(super) struct RouteStep {
    pub name: String,
    pub plugin: String,
    pub config: RouteConfig,
    pub action: RouteAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteAction {
    /// Not running: start it.
    Add,
    /// Running with another config: start the new one, then drain the old.
    Restart,
    /// Same config, new plugin version: swap it into the running pool.
    Swap,
    /// Same config, same version: nothing to do.
    Keep,
    /// Its plugin has no version that loaded: it cannot start (a running
    /// route of that name is left as it is).
    NotStarted,
}

/// The difference between what runs and `new`. `hashes` holds the hash of each
/// loaded plugin's file as it is on disk now (a missing one counts as changed):
/// a new file under the same settings is a new version.
pub(super) fn diff(running: &Running<'_>, new: &Config, hashes: &BTreeMap<String, String>) -> Plan {
    let needs_restart = running.config.is_some_and(|old| {
        old.nats != new.nats
            || old.dead_letter != new.dead_letter
            || old.host != new.host
            || old.admin != new.admin
            || old.telemetry != new.telemetry
    });
    let streams = new.streams.iter().filter(|stream| !running.config.is_some_and(|old| old.streams.contains(stream))).cloned().collect();
    let buckets = new.buckets.iter().filter(|bucket| !running.config.is_some_and(|old| old.buckets.contains(bucket))).cloned().collect();

    let mut plugins = Vec::new();
    for (name, config) in &new.plugins {
        let current = running.plugins.get(name.as_str());
        let spec = PluginSpec::from_config(name, config).map_err(|err| format!("plugin `{name}`: encoding its config: {err:#}"));
        let unchanged = match (&spec, current) {
            (Ok(spec), Some(version)) => version.spec == spec && hashes.get(name).is_some_and(|hash| hash == version.hash),
            _ => false,
        };
        if !unchanged {
            plugins.push(PluginStep { name: name.clone(), previous: current.map(|v| v.hash.to_owned()), spec });
        }
    }

    let routes = new
        .routes
        .iter()
        .map(|config| {
            let (name, plugin) = route_names(config);
            let new_version = plugins.iter().any(|step| step.name == plugin);
            let action = match running.routes.get(name) {
                _ if !new_version && !running.plugins.contains_key(plugin) => RouteAction::NotStarted,
                None => RouteAction::Add,
                Some(old) if *old != config => RouteAction::Restart,
                Some(_) if new_version => RouteAction::Swap,
                Some(_) => RouteAction::Keep,
            };
            RouteStep { name: name.to_owned(), plugin: plugin.to_owned(), config: config.clone(), action }
        })
        .collect();

    let removed_routes = running
        .routes
        .keys()
        .filter(|name| !new.routes.iter().any(|r| route_names(r).0 == **name))
        .map(|name| (*name).to_owned())
        .collect();
    let removed_plugins = running.plugins.keys().filter(|name| !new.plugins.contains_key(**name)).map(|name| (*name).to_owned()).collect();

    let mut plan = Plan { needs_restart, streams, buckets, plugins, routes, removed_routes, removed_plugins };
    let unusable: Vec<String> = plan.plugins.iter().filter(|step| step.spec.is_err()).map(|step| step.name.clone()).collect();
    for name in unusable {
        plan.not_loaded(&name);
    }
    plan
}

impl Plan {
    /// The new version of `plugin` did not load: its routes keep (or start on)
    /// the version running now, and without one they do not start.
    pub(super) fn not_loaded(&mut self, plugin: &str) {
        let running = self.plugins.iter().any(|step| step.name == plugin && step.previous.is_some());
        for step in self.routes.iter_mut().filter(|step| step.plugin == plugin) {
            step.action = match step.action {
                RouteAction::Swap => RouteAction::Keep,
                RouteAction::Add | RouteAction::Restart if !running => RouteAction::NotStarted,
                other => other,
            };
        }
    }
}

/// A route's name and its plugin's: the one place the plan looks inside a route's config.
fn route_names(config: &RouteConfig) -> (&str, &str) {
    (config.name.get_ref(), config.plugin.get_ref())
}
