//! A snapshot of the running host for `switchyard status` (the shape lives
//! with the control requests in `crate::reload`).

use std::time::SystemTime;

use super::Host;
use crate::config::Kind;
use crate::reload::{PluginStatus, RouteStatus, Status, registry};

fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The name of a `Breaker::state_code`.
fn breaker_state(code: i64) -> &'static str {
    match code {
        0 => "closed",
        1 => "half-open",
        _ => "open",
    }
}

impl Host {
    /// `hostname:pid`, to tell several hosts apart.
    pub fn name(&self) -> String {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned());
        format!("{}:{}", hostname.unwrap_or_else(|_| "host".into()), std::process::id())
    }

    /// This host's entry in the fleet's registry: the plugins its routes serve.
    pub(crate) fn registry_entry(&self) -> registry::Entry {
        let plugins = self.routes.values().map(|running| running.route.pool.plugin()).map(|p| (p.spec.name.clone(), p.hash.clone()));
        registry::Entry::new(self.name(), plugins.collect())
    }

    /// What this host serves now, with which versions, and its last reload.
    pub fn status(&self) -> Status {
        Status {
            host: self.name(),
            url: self.url.clone(),
            started_at: unix(self.started_at),
            routes: self
                .routes
                .values()
                .map(|running| {
                    let route = &running.route;
                    let plugin = route.pool.plugin();
                    let figures = self.windows.figures(&route.name, &route.metrics);
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                    RouteStatus {
                        name: route.name.clone(),
                        serves: route.spec.describe(),
                        plugin: plugin.spec.name.clone(),
                        version: plugin.hash.clone(),
                        rollbacks: route.pool.rollbacks(),
                        in_flight: route.metrics.in_flight_now(),
                        rate_per_sec: figures.rate_per_sec,
                        error_rate: figures.error_rate,
                        p50_ms: figures.p50.map(ms),
                        p99_ms: figures.p99.map(ms),
                        breaker: route.breaker.as_ref().map(|b| breaker_state(b.state_code()).to_owned()),
                        consumer_pending: match route.spec.kind {
                            Kind::JetStream(_) => self.metrics.consumer_pending(&route.name),
                            Kind::Core(_) | Kind::Timer(_) => None,
                        },
                        trial: route.pool.trial().0,
                    }
                })
                .collect(),
            plugins: self
                .plugins
                .iter()
                .map(|(name, plugin)| PluginStatus {
                    name: name.clone(),
                    version: plugin.hash.clone(),
                    path: plugin.spec.path.display().to_string(),
                    loaded_at: unix(plugin.loaded_at),
                })
                .collect(),
            last_reload: self.last_reload.clone(),
            counters: self.metrics.snapshot().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }
}
