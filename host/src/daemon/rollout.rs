//! `switchyard rollout`: a host's side. Each route that serves the plugin acts
//! on its own version on trial; every host that hears the request does the
//! same, so promote and abort apply fleet-wide.

use super::Host;
use crate::reload::{RolloutAction, RolloutAnswer, RolloutRequest, RouteRollout};

impl Host {
    pub(crate) fn rollout(&self, request: &RolloutRequest) -> RolloutAnswer {
        let routes = self
            .routes
            .values()
            .map(|running| &running.route)
            .filter(|route| route.pool.plugin().spec.name == request.plugin)
            .map(|route| {
                let done = match request.action {
                    RolloutAction::Promote => Some(route.pool.conclude(true)),
                    RolloutAction::Abort => Some(route.pool.conclude(false)),
                    RolloutAction::Status | RolloutAction::Diff => None,
                };
                if let Some(Ok(done)) = &done {
                    tracing::info!(route = %route.name, plugin = %request.plugin, "rollout: {done}");
                }
                let diffs = if request.action == RolloutAction::Diff { route.pool.diffs() } else { Vec::new() };
                let (trial, last) = route.pool.trial();
                RouteRollout { route: route.name.clone(), current: route.pool.plugin().hash.clone(), trial, last, done, diffs }
            })
            .collect();
        RolloutAnswer { host: self.name(), routes }
    }
}
