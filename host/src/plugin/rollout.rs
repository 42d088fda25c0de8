//! How a new plugin version takes over a route after a hot reload, by its
//! `[plugins.NAME.rollout] strategy`:
//!
//! - swap: it takes every message at once, on probation: if too many of its
//!   first messages fail, the pool returns to the previous version;
//! - canary: it takes a growing share of messages, step by step, while its
//!   failure rate and p99 stay close to the current version's;
//! - shadow: it runs on copies of messages beside the current version (`shadow.rs`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::load::Plugin;
use super::shadow::Shadow;
use crate::config::Strategy;
use crate::telemetry::RolloutMetrics;

/// A version being tried, and how.
#[derive(Debug)]
pub(super) enum Trial {
    /// Swap: the candidate is already current; `previous` is what a rollback restores.
    Probation(Probation),
    Canary(Canary),
    Shadow(Arc<Shadow>),
}

impl Trial {
    /// The trial `candidate` starts with when it replaces `current`; `None`
    /// for a swap with probation off (`messages = 0`): it is simply current.
    pub(super) fn start(current: Arc<Plugin>, candidate: Arc<Plugin>, metrics: &RolloutMetrics) -> Option<Self> {
        let policy = &candidate.spec.rollout;
        match policy.strategy {
            Strategy::Swap if policy.messages == 0 => None,
            Strategy::Swap => Some(Trial::Probation(Probation::new(current, candidate))),
            Strategy::Canary => Some(Trial::Canary(Canary::new(candidate))),
            Strategy::Shadow => Some(Trial::Shadow(Arc::new(Shadow::new(candidate, metrics.clone())))),
        }
    }

    pub(super) fn candidate(&self) -> &Arc<Plugin> {
        match self {
            Trial::Probation(probation) => &probation.candidate,
            Trial::Canary(canary) => &canary.candidate,
            Trial::Shadow(shadow) => shadow.candidate(),
        }
    }

    pub(super) fn status(&self) -> TrialStatus {
        let candidate = self.candidate();
        let mut status = TrialStatus {
            strategy: candidate.spec.rollout.strategy,
            candidate: candidate.hash.clone(),
            share_percent: 0,
            step: None,
            seen: 0,
            failed: 0,
            current_seen: 0,
            current_failed: 0,
            shadow: None,
        };
        match self {
            Trial::Probation(probation) => {
                status.share_percent = 100;
                (status.seen, status.failed) = (u64::from(probation.seen), u64::from(probation.failed));
            }
            Trial::Canary(canary) => {
                status.share_percent = canary.share();
                status.step = Some(format!("{} of {}", canary.step + 1, canary.steps.len()));
                (status.seen, status.failed) = (canary.new.calls, canary.new.failures);
                (status.current_seen, status.current_failed) = (canary.old.calls, canary.old.failures);
            }
            Trial::Shadow(shadow) => status.shadow = Some(shadow.counts()),
        }
        status
    }
}

/// What `switchyard rollout status` shows of a trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialStatus {
    pub strategy: Strategy,
    /// The version on trial.
    pub candidate: String,
    /// Share of new messages it gets (percent; 0 for a shadow).
    pub share_percent: u32,
    /// Canary: "2 of 4".
    pub step: Option<String>,
    /// Its messages and failures: in this step for a canary, since the swap on probation.
    pub seen: u64,
    pub failed: u64,
    /// The current version's in this step (canary).
    pub current_seen: u64,
    pub current_failed: u64,
    pub shadow: Option<ShadowCounts>,
}

/// A shadow's comparisons so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShadowCounts {
    pub same: u64,
    pub different: u64,
    /// Not shadowed: the shadow's calls were all busy.
    pub dropped: u64,
}

/// What one more result decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judgement {
    Undecided,
    /// A canary moved to its next share (percent).
    Advanced(u32),
    /// The candidate takes over.
    Accepted,
    /// Back to the previous version, for this reason.
    RollBack(String),
}

/// Swap: the first `window` messages of a freshly swapped-in version are watched.
#[derive(Debug)]
pub(super) struct Probation {
    pub candidate: Arc<Plugin>,
    pub previous: Arc<Plugin>,
    seen: u32,
    failed: u32,
    window: u32,
    /// More failures than this within the window means rollback.
    allowed_failures: u32,
}

impl Probation {
    fn new(previous: Arc<Plugin>, candidate: Arc<Plugin>) -> Self {
        let policy = &candidate.spec.rollout;
        let allowed_failures = (f64::from(policy.messages) * policy.max_failure_rate.clamp(0.0, 1.0)).floor() as u32;
        let window = policy.messages;
        Self { candidate, previous, seen: 0, failed: 0, window, allowed_failures }
    }

    pub(super) fn record(&mut self, success: bool) -> Judgement {
        self.seen += 1;
        self.failed += u32::from(!success);
        if self.failed > self.allowed_failures {
            Judgement::RollBack(format!("{} of the first {} messages failed on the new version", self.failed, self.seen))
        } else if self.seen >= self.window {
            Judgement::Accepted
        } else {
            Judgement::Undecided
        }
    }
}

/// Handler times kept per version and step, for its p99: enough for a
/// percentile, bounded so a long step costs no more memory.
const MAX_SAMPLES: usize = 20_000;

/// Below this a p99 is not compared: sub-millisecond handler times differ by
/// scheduling noise more than by code.
const LATENCY_FLOOR: Duration = Duration::from_millis(1);

/// One version's results in one canary step.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    failures: u64,
    times: Vec<Duration>,
}

impl Tally {
    fn record(&mut self, success: bool, took: Duration) {
        self.calls += 1;
        self.failures += u64::from(!success);
        if self.times.len() < MAX_SAMPLES {
            self.times.push(took);
        }
    }

    fn failure_rate(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.failures as f64 / self.calls as f64 }
    }

    fn p99(&mut self) -> Option<Duration> {
        if self.times.is_empty() {
            return None;
        }
        self.times.sort_unstable();
        Some(self.times[(self.times.len() - 1) * 99 / 100])
    }
}

/// Canary: the candidate gets `steps[step]` percent of first deliveries; each
/// step is compared with the current version over the same time.
#[derive(Debug)]
pub(super) struct Canary {
    pub candidate: Arc<Plugin>,
    steps: Vec<u32>,
    step: usize,
    began: Instant,
    new: Tally,
    old: Tally,
}

impl Canary {
    fn new(candidate: Arc<Plugin>) -> Self {
        let steps = candidate.spec.rollout.steps.clone();
        Self { candidate, steps, step: 0, began: Instant::now(), new: Tally::default(), old: Tally::default() }
    }

    /// The candidate's share now, in percent.
    pub(super) fn share(&self) -> u32 {
        self.steps.get(self.step).copied().unwrap_or(100)
    }

    /// Whether a message with this `order_by` key (or, without one, this
    /// message) goes to the candidate. A key's bucket is fixed and the share
    /// only grows, so a key that moved to the candidate stays there.
    pub(super) fn takes(&self, key: Option<&str>) -> bool {
        bucket(key) < self.share()
    }

    /// Count a result of `candidate` (`new`) or of the current version.
    pub(super) fn record(&mut self, new: bool, success: bool, took: Duration, now: Instant) -> Judgement {
        let policy = &self.candidate.spec.rollout;
        if new {
            self.new.record(success, took);
        } else {
            self.old.record(success, took);
        }
        let (new_rate, old_rate) = (self.new.failure_rate(), self.old.failure_rate());
        if self.new.calls >= u64::from(policy.messages.max(1)) && new_rate > old_rate + policy.max_failure_rate_increase {
            return Judgement::RollBack(format!(
                "{} of {} messages failed on the new version at {} % ({:.1} %, against {:.1} % on the current version)",
                self.new.failures,
                self.new.calls,
                self.share(),
                new_rate * 100.0,
                old_rate * 100.0
            ));
        }
        let held = now.duration_since(self.began) >= policy.step_for && self.new.calls >= u64::from(policy.step_messages);
        if !held {
            return Judgement::Undecided;
        }
        if let (Some(new_p99), Some(old_p99)) = (self.new.p99(), self.old.p99()) {
            let bound = old_p99.max(LATENCY_FLOOR).mul_f64(policy.max_latency_ratio);
            if new_p99 > bound {
                return Judgement::RollBack(format!(
                    "the new version's p99 handler time at {} % was {new_p99:?}, more than {} × the current version's {old_p99:?}",
                    self.share(),
                    policy.max_latency_ratio
                ));
            }
        }
        self.step += 1;
        (self.new, self.old, self.began) = (Tally::default(), Tally::default(), now);
        match self.steps.get(self.step) {
            Some(&share) => Judgement::Advanced(share),
            None => Judgement::Accepted,
        }
    }
}

/// A percent bucket: fixed for a key (the same on every host: the hasher's
/// keys are fixed), random for a message without one.
fn bucket(key: Option<&str>) -> u32 {
    match key {
        Some(key) => {
            let mut hasher = std::hash::DefaultHasher::new();
            key.hash(&mut hasher);
            (hasher.finish() % 100) as u32
        }
        None => fastrand::u32(0..100),
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn a_key_keeps_its_bucket_and_keys_spread_evenly() {
        let buckets: Vec<u32> = (0..2000).map(|k| bucket(Some(&format!("key-{k}")))).collect();
        let again: Vec<u32> = (0..2000).map(|k| bucket(Some(&format!("key-{k}")))).collect();
        assert_eq!(buckets, again, "a key's bucket never changes, so it stays on one version within a step");
        let under_ten = buckets.iter().filter(|b| **b < 10).count();
        assert!((120..=280).contains(&under_ten), "about 10 % of 2000 keys under 10: {under_ten}");
        assert!(buckets.iter().all(|b| *b < 100));
    }
}
