//! The backoff schedule of a route: the delay before each new attempt of a
//! message that failed, explicit or exponential, with optional jitter.

use std::time::Duration;

use crate::config::RetryConfig;

const DEFAULT_SCHEDULE: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)];

#[derive(Debug, Clone, PartialEq)]
enum Schedule {
    /// The n-th failure waits `delays[n-1]`; the last entry repeats.
    Explicit(Vec<Duration>),
    /// `initial · multiplier^(n-1)`, capped at `max`.
    Exponential { initial: Duration, multiplier: f64, max: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Backoff {
    schedule: Schedule,
    jitter: f64,
}

impl Backoff {
    pub(crate) fn new(config: &RetryConfig) -> Self {
        let schedule = match (&config.delays, config.initial) {
            (_, Some(initial)) => {
                Schedule::Exponential { initial, multiplier: config.multiplier, max: config.max.unwrap_or(Duration::MAX) }
            }
            (Some(delays), None) if !delays.is_empty() => Schedule::Explicit(delays.clone()),
            _ => Schedule::Explicit(DEFAULT_SCHEDULE.to_vec()),
        };
        Self { schedule, jitter: config.jitter }
    }

    /// The delay after failed attempt `attempt` (1-based).
    pub(crate) fn delay_after(&self, attempt: u64) -> Duration {
        let n = attempt.max(1);
        let base = match &self.schedule {
            Schedule::Explicit(delays) => {
                let index = usize::try_from(n - 1).unwrap_or(usize::MAX);
                delays.get(index).or(delays.last()).copied().unwrap_or_default()
            }
            Schedule::Exponential { initial, multiplier, max } => {
                let exponent = i32::try_from(n - 1).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * multiplier.powi(exponent);
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX).min(*max)
            }
        };
        if self.jitter == 0.0 {
            return base;
        }
        // Uniform in [base·(1−j), base·(1+j)].
        let factor = 1.0 + self.jitter * (2.0 * fastrand::f64() - 1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn explicit_schedule_then_last_entry_repeats() {
        let config = RetryConfig { delays: Some(vec![ms(1000), ms(5000)]), ..RetryConfig::default() };
        let backoff = Backoff::new(&config);
        assert_eq!(backoff.delay_after(1), ms(1000));
        assert_eq!(backoff.delay_after(2), ms(5000));
        assert_eq!(backoff.delay_after(9), ms(5000));
        assert_eq!(backoff.delay_after(0), ms(1000));
    }

    #[test]
    fn the_default_is_one_five_thirty_seconds() {
        let backoff = Backoff::new(&RetryConfig::default());
        let got: Vec<Duration> = (1..=4).map(|n| backoff.delay_after(n)).collect();
        assert_eq!(got, vec![ms(1000), ms(5000), ms(30_000), ms(30_000)]);
    }

    #[test]
    fn exponential_grows_and_is_capped() {
        let config = RetryConfig { initial: Some(ms(100)), multiplier: 2.0, max: Some(ms(500)), ..RetryConfig::default() };
        let backoff = Backoff::new(&config);
        let got: Vec<Duration> = (1..=5).map(|n| backoff.delay_after(n)).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(400), ms(500), ms(500)]);
        assert_eq!(backoff.delay_after(10_000), ms(500), "no overflow on huge attempts");
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let config = RetryConfig { delays: Some(vec![ms(1000)]), jitter: 0.2, ..RetryConfig::default() };
        let backoff = Backoff::new(&config);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay_after(1)).collect();
        assert!(delays.iter().all(|d| *d >= ms(800) && *d <= ms(1200)), "{delays:?}");
        assert!(delays.iter().any(|d| *d != ms(1000)), "jitter spreads the delays");
    }
}
