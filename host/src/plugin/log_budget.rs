//! How much a plugin may log: [`LINES_PER_CALL`] lines per call, and
//! [`LINES_PER_SECOND`] per plugin version across all its instances, counting
//! `log()` and stdout/stderr lines alike. Lines over either are counted, not
//! written, and the count is logged once when the call ends, so a plugin in a
//! logging loop costs the host a line per call, not gigabytes of log.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub(crate) const LINES_PER_CALL: u32 = 100;
pub(crate) const LINES_PER_SECOND: u32 = 1000;

/// One instance's budget: its own per-call count, its version's shared rate.
#[derive(Clone)]
pub(super) struct LogBudget {
    rate: Arc<DefaultDirectRateLimiter>,
    call_lines: Arc<AtomicU32>,
    suppressed: Arc<AtomicU64>,
}

impl LogBudget {
    /// The shared rate of a plugin version.
    pub(super) fn rate() -> Arc<DefaultDirectRateLimiter> {
        let per_second = NonZeroU32::new(LINES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        Arc::new(RateLimiter::direct(Quota::per_second(per_second)))
    }

    pub(super) fn new(rate: Arc<DefaultDirectRateLimiter>) -> Self {
        Self { rate, call_lines: Arc::default(), suppressed: Arc::default() }
    }

    /// A new call starts with a full per-call budget.
    pub(super) fn begin_call(&self) {
        self.call_lines.store(0, Ordering::Relaxed);
    }

    /// Whether one more line may be written; if not, it is counted.
    pub(super) fn allow(&self) -> bool {
        if self.call_lines.fetch_add(1, Ordering::Relaxed) < LINES_PER_CALL && self.rate.check().is_ok() {
            return true;
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Log how many lines were held back since the last report, if any.
    pub(super) fn report(&self, plugin: &str) {
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            tracing::warn!(
                target: "switchyard::plugin", plugin,
                "{suppressed} log line(s) suppressed: over {LINES_PER_CALL} per call or {LINES_PER_SECOND} per second"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_writes_at_most_its_budget() {
        let budget = LogBudget::new(LogBudget::rate());
        let written = (0..150).filter(|_| budget.allow()).count();
        assert_eq!(written, LINES_PER_CALL as usize);
        assert_eq!(budget.suppressed.load(Ordering::Relaxed), 50);
        budget.begin_call();
        assert!(budget.allow(), "the next call has a budget again");
    }

    #[test]
    fn all_instances_of_a_version_share_the_rate() {
        let rate = LogBudget::rate();
        let instances: Vec<LogBudget> = (0..20).map(|_| LogBudget::new(rate.clone())).collect();
        let written: usize = instances.iter().map(|b| (0..100).filter(|_| b.allow()).count()).sum();
        assert!(written <= LINES_PER_SECOND as usize + 5, "{written} lines in well under a second");
    }
}
