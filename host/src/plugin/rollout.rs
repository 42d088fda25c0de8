//! Probation of a freshly swapped-in plugin version: its first messages are
//! watched, and if too many fail the pool returns to the previous version.

use std::sync::Arc;

use super::load::Plugin;

/// A version on probation and the one it replaced.
#[derive(Debug)]
pub(super) struct Rollout {
    pub candidate: Arc<Plugin>,
    pub previous: Arc<Plugin>,
    seen: u32,
    failed: u32,
    window: u32,
    /// More failures than this within the window means rollback.
    allowed_failures: u32,
}

/// What one more result decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judgement {
    Undecided,
    Accepted,
    RollBack { failed: u32, seen: u32 },
}

impl Rollout {
    /// `None` when the plugin's rollout policy is off (`messages = 0`).
    pub(super) fn start(previous: Arc<Plugin>, candidate: Arc<Plugin>) -> Option<Self> {
        let policy = candidate.spec.rollout;
        if policy.messages == 0 {
            return None;
        }
        let allowed_failures = (f64::from(policy.messages) * policy.max_failure_rate.clamp(0.0, 1.0)).floor() as u32;
        Some(Self { candidate, previous, seen: 0, failed: 0, window: policy.messages, allowed_failures })
    }

    pub(super) fn record(&mut self, success: bool) -> Judgement {
        self.seen += 1;
        self.failed += u32::from(!success);
        if self.failed > self.allowed_failures {
            Judgement::RollBack { failed: self.failed, seen: self.seen }
        } else if self.seen >= self.window {
            Judgement::Accepted
        } else {
            Judgement::Undecided
        }
    }
}
