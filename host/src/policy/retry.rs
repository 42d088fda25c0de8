//! The backoff schedule of a route: the delay before each new attempt of a
//! message that failed.

use std::time::Duration;

use crate::config::RetryConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    delays: Vec<Duration>,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Self {
        Self { delays: config.delays.clone() }
    }

    /// The delay after failed attempt `attempt` (1-based): the schedule's entry,
    /// its last entry repeating once the schedule runs out.
    pub fn delay_after(&self, attempt: u64) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.delays.get(index).or(self.delays.last()).copied().unwrap_or(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_then_last_entry_repeats() {
        let backoff = Backoff { delays: vec![Duration::from_secs(1), Duration::from_secs(5)] };
        assert_eq!(backoff.delay_after(1), Duration::from_secs(1));
        assert_eq!(backoff.delay_after(2), Duration::from_secs(5));
        assert_eq!(backoff.delay_after(9), Duration::from_secs(5));
        assert_eq!(backoff.delay_after(0), Duration::from_secs(1));
    }
}
