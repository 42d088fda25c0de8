//! Hot reload, the trigger side: a changed plugin file or runtime.toml, SIGHUP
//! or a request over NATS all arrive as a [`Request`] on one channel, handled
//! one at a time by the serve loop; and the answers' shapes ([`ReloadReport`],
//! [`Status`]). What a reload changes is decided and applied by `crate::daemon`,
//! the same way as startup; nothing here depends on the daemon.

pub(crate) mod control;
mod objects;
pub(crate) mod registry;
mod rollout;
pub(crate) mod signature;
mod status;
mod watch;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub(crate) use objects::ObjectWatcher;
pub(crate) use rollout::{RolloutAction, RolloutAnswer, RolloutRequest, RouteRollout};
pub(crate) use status::{PluginStatus, RouteStatus, Status};
pub(crate) use watch::Watcher;

/// Work for the serve loop.
#[derive(Debug)]
pub(crate) enum Request {
    /// Re-read runtime.toml and the plugin files; `reply` is a NATS subject to
    /// send the [`ReloadReport`] to.
    Reload { cause: String, reply: Option<String> },
    /// Send a [`Status`] to `reply`.
    Status { reply: String },
    /// Act on a plugin's version on trial; send a [`RolloutAnswer`] to `reply`.
    Rollout { request: RolloutRequest, reply: Option<String> },
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Unix seconds.
    pub at: u64,
    pub cause: String,
    /// False when the config was refused whole (it had errors).
    pub ok: bool,
    /// What changed: versions swapped, routes added/removed/replaced.
    pub changes: Vec<String>,
    /// What was refused: the config's problems, or plugin versions that failed to load.
    pub refused: Vec<String>,
}

impl ReloadReport {
    pub(crate) fn new(cause: &str) -> Self {
        let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        Self { at, cause: cause.to_owned(), ok: true, changes: Vec::new(), refused: Vec::new() }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        match (self.ok, self.changes.is_empty(), self.refused.is_empty()) {
            (false, _, _) => format!("reload refused: {}", self.refused.join("; ")),
            (true, true, true) => "reload: nothing changed".into(),
            (true, false, true) => format!("reload applied: {}", self.changes.join("; ")),
            (true, true, false) => format!("reload refused: {}", self.refused.join("; ")),
            (true, false, false) => format!("reload applied: {}; refused: {}", self.changes.join("; "), self.refused.join("; ")),
        }
    }
}
