//! `switchyard rollout status|promote|abort|diff NAME`: the request sent on
//! `<control_subject>.rollout` to every host, each host's answer, and its text.
//! The daemon fills the answer in (`daemon::rollout`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::plugin::{Diff, TrialStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    /// The version on trial on each route of the plugin, and how it fares.
    Status,
    /// Make the version on trial current now, on every host.
    Promote,
    /// Drop the version on trial; the current version serves on, on every host.
    Abort,
    /// A shadow's kept differences from the current version.
    Diff,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RolloutRequest {
    pub action: RolloutAction,
    pub plugin: String,
}

/// One host's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RolloutAnswer {
    pub host: String,
    pub routes: Vec<RouteRollout>,
}

/// One route of the plugin on one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RouteRollout {
    pub route: String,
    /// The version its messages go to (a canary's share aside).
    pub current: String,
    pub trial: Option<TrialStatus>,
    /// How the last trial ended.
    pub last: Option<String>,
    /// Promote or abort: what was done, or why nothing was.
    pub done: Option<Result<String, String>>,
    /// Diff: the shadow's kept differences.
    #[serde(default)]
    pub diffs: Vec<Diff>,
}

impl RolloutAnswer {
    pub(crate) fn render(&self) -> String {
        let mut out = format!("host {}\n", self.host);
        if self.routes.is_empty() {
            out.push_str("  no route of this host serves the plugin\n");
        }
        for route in &self.routes {
            let _ = writeln!(out, "  route {}: current version {}", route.route, route.current);
            match &route.done {
                Some(Ok(done)) => {
                    let _ = writeln!(out, "    {done}");
                }
                Some(Err(why)) => {
                    let _ = writeln!(out, "    nothing done: {why}");
                }
                None => {}
            }
            match &route.trial {
                Some(trial) => out.push_str(&trial_lines(trial)),
                None if route.done.is_none() => out.push_str("    no version on trial\n"),
                None => {}
            }
            if let Some(last) = &route.last {
                let _ = writeln!(out, "    last trial: {last}");
            }
            for (i, diff) in route.diffs.iter().enumerate() {
                let _ = writeln!(out, "    difference {} on `{}`: {}", i + 1, diff.subject, diff.payload);
                for change in &diff.changes {
                    let _ = writeln!(out, "      {change}");
                }
                let _ = writeln!(out, "      current: {}", shown(&diff.current));
                let _ = writeln!(out, "      shadow:  {}", shown(&diff.shadow));
            }
        }
        out
    }
}

fn trial_lines(trial: &TrialStatus) -> String {
    let mut out = format!("    on trial: version {} ({})", trial.candidate, trial.strategy);
    if let Some(step) = &trial.step {
        let _ = write!(out, ", step {step} at {} %", trial.share_percent);
    }
    out.push('\n');
    match &trial.shadow {
        Some(shadow) => {
            let _ = writeln!(out, "    same {}, different {}, dropped {}", shadow.same, shadow.different, shadow.dropped);
        }
        None => {
            let _ = write!(out, "    new version: {} failed of {}", trial.failed, trial.seen);
            if trial.step.is_some() {
                let _ = write!(out, "; current version: {} failed of {} (this step)", trial.current_failed, trial.current_seen);
            }
            out.push('\n');
        }
    }
    out
}

fn shown(outcome: &crate::plugin::Shown) -> String {
    let mut text = outcome.outcome.clone();
    for publish in &outcome.publishes {
        let _ = write!(text, "; publish {publish}");
    }
    if let Some(reply) = &outcome.reply {
        let _ = write!(text, "; reply {reply}");
    }
    text
}
