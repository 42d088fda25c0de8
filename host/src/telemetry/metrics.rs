//! Host-wide counters. Plain atomics: they are bumped on the message path and read
//! rarely (status requests, shutdown summary).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub handled: AtomicU64,
    pub acked: AtomicU64,
    pub replied: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Dead letters the dead-letter stream did not take (the message is kept).
    pub dead_letter_failures: AtomicU64,
    pub plugin_failures: AtomicU64,
    pub publish_failures: AtomicU64,
    pub slow_consumer_events: AtomicU64,
    /// Core messages dropped because the rate limit's wait ran out.
    pub shed: AtomicU64,
    /// Calls refused because a breaker was open.
    pub breaker_rejected: AtomicU64,
    /// Reloads that changed something.
    pub reloads: AtomicU64,
    /// Reloads refused in whole or in part (bad config, bad plugin version).
    pub reloads_refused: AtomicU64,
}

impl Metrics {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `name=value` pairs for logs and status replies.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("handled", read(&self.handled)),
            ("acked", read(&self.acked)),
            ("replied", read(&self.replied)),
            ("retried", read(&self.retried)),
            ("dead_lettered", read(&self.dead_lettered)),
            ("dead_letter_failures", read(&self.dead_letter_failures)),
            ("plugin_failures", read(&self.plugin_failures)),
            ("publish_failures", read(&self.publish_failures)),
            ("slow_consumer_events", read(&self.slow_consumer_events)),
            ("shed", read(&self.shed)),
            ("breaker_rejected", read(&self.breaker_rejected)),
            ("reloads", read(&self.reloads)),
            ("reloads_refused", read(&self.reloads_refused)),
        ]
    }
}
