//! `[plugins.NAME.rollout]`: how a new version of a plugin takes over after a
//! hot reload (swap, canary or shadow) and the limits each strategy keeps.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;

/// How a new version of a plugin takes over after a hot reload
/// (docs/OPERATIONS.md, "Rolling out a new version").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default)]
    pub strategy: Strategy,
    /// Swap: messages on probation (0 turns automatic rollback off). Canary:
    /// the fewest messages the new version is judged on.
    #[serde(default = "defaults::rollout_messages")]
    pub messages: u32,
    /// Swap: share (0.0–1.0) of the probation messages that may fail before
    /// the version is rolled back.
    #[serde(default = "defaults::rollout_failure_rate")]
    pub max_failure_rate: f64,
    /// Canary: the share of messages (percent) the new version gets, step by step.
    #[serde(default = "defaults::canary_steps")]
    pub steps: Vec<u32>,
    /// Canary: each step is held at least this long…
    #[serde(default = "defaults::canary_step_for", deserialize_with = "super::units::duration")]
    pub step_for: Duration,
    /// …and until the new version has handled this many messages in it.
    #[serde(default = "defaults::canary_step_messages")]
    pub step_messages: u32,
    /// Canary: how much higher (0.0–1.0) the new version's failure rate may be
    /// than the current version's before it is rolled back.
    #[serde(default = "defaults::canary_failure_rate_increase")]
    pub max_failure_rate_increase: f64,
    /// Canary: how many times the current version's p99 handler time the new
    /// version's may be.
    #[serde(default = "defaults::canary_latency_ratio")]
    pub max_latency_ratio: f64,
    /// Shadow: the share (0.0–1.0] of messages also run on the new version.
    #[serde(default = "defaults::shadow_sample")]
    pub sample: f64,
    /// Shadow: calls of the new version at once; a message beyond them is not
    /// shadowed (and counted as dropped).
    #[serde(default = "defaults::shadow_concurrency")]
    pub concurrency: u32,
    /// Shadow: differences kept for `switchyard rollout diff`.
    #[serde(default = "defaults::shadow_keep_diffs")]
    pub keep_diffs: u32,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            messages: defaults::rollout_messages(),
            max_failure_rate: defaults::rollout_failure_rate(),
            steps: defaults::canary_steps(),
            step_for: defaults::canary_step_for(),
            step_messages: defaults::canary_step_messages(),
            max_failure_rate_increase: defaults::canary_failure_rate_increase(),
            max_latency_ratio: defaults::canary_latency_ratio(),
            sample: defaults::shadow_sample(),
            concurrency: defaults::shadow_concurrency(),
            keep_diffs: defaults::shadow_keep_diffs(),
        }
    }
}

/// How a new version takes over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// All messages at once, on probation: rolled back if too many of its
    /// first messages fail.
    #[default]
    Swap,
    /// A growing share of messages, step by step, compared with the current version.
    Canary,
    /// Copies of messages, its publishes and replies captured and compared,
    /// never sent; it takes over when promoted.
    Shadow,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::Swap => "swap",
            Strategy::Canary => "canary",
            Strategy::Shadow => "shadow",
        })
    }
}
