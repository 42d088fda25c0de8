//! One running route: its policies and pool, its workers, and the token that
//! stops just this route (a reload replaces or removes routes one by one).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{RouteConfig, RouteSpec};
use crate::plugin::{Instance, Plugin, Pool};
use crate::route::{Outputs, Route};
use crate::workers::Workers;

pub(crate) struct RunningRoute {
    pub route: Arc<Route>,
    /// What it was started with: a reload compares the new config to this.
    pub(crate) config: RouteConfig,
    cancel: CancellationToken,
    workers: Workers,
}

impl RunningRoute {
    /// Subscribe or bind the consumer and start the workers. `first` is an
    /// instance of `plugin` to seed the pool with, when one is at hand.
    pub(crate) async fn start(config: RouteConfig, plugin: Arc<Plugin>, first: Option<Instance>, out: &Outputs) -> anyhow::Result<Self> {
        let spec = RouteSpec::from(&config);
        let name = spec.name.clone();
        let first = match first {
            Some(instance) => instance,
            None => Instance::new(plugin.clone())
                .await
                .map_err(|e| anyhow::anyhow!("plugin `{}`: cannot make an instance: {e:?}", plugin.spec.name))?,
        };
        let pool = Arc::new(Pool::new(plugin, first, spec.concurrency).counting_in(out.metrics.rollout(&name)));
        let route = Arc::new(Route::new(spec, pool, out.metrics.route(&name)));
        let cancel = CancellationToken::new();
        let mut workers = Workers::default();
        route.clone().start(out.clone(), cancel.clone(), &mut workers).await.with_context(|| format!("starting route `{name}`"))?;
        Ok(Self { route, config, cancel, workers })
    }

    /// What it serves, for the startup summary and `switchyard status`.
    pub(crate) fn describe(&self) -> String {
        let plugin = self.route.pool.plugin();
        format!("route {}: {} -> plugin {} ({})", self.route.name, self.route.spec.describe(), plugin.spec.name, plugin.hash)
    }

    /// Stop taking messages, let those in flight finish (up to `deadline`).
    /// Returns the workers that were still busy and had to be aborted.
    pub(crate) async fn stop(self, deadline: Duration) -> Vec<String> {
        self.cancel.cancel();
        self.workers.join_within(deadline).await
    }
}
