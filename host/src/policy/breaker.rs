//! A route's circuit breaker: closed → open after consecutive failures or a
//! failure rate over a window; open → half-open after `open_for`, letting
//! `probes` messages through; all probes succeed → closed, one fails → open.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { permits_left: u32, successes: u32 },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive_failures: u32,
    /// (when, failed) of the calls in the rate window.
    window: VecDeque<(Instant, bool)>,
}

/// May a call go ahead?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    Allowed,
    /// Not now; ask again in this long.
    Denied(Duration),
}

#[derive(Debug)]
pub(crate) struct Breaker {
    route: String,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    pub(crate) fn new(route: &str, config: &BreakerConfig) -> Self {
        let state = State { phase: Phase::Closed, consecutive_failures: 0, window: VecDeque::new() };
        Self { route: route.to_owned(), config: config.clone(), state: Mutex::new(state) }
    }

    /// Take a permit for one call (a probe when half-open).
    pub(crate) fn try_acquire(&self) -> Permit {
        let mut state = self.lock();
        let now = Instant::now();
        if let Phase::Open { until } = state.phase {
            if now < until {
                return Permit::Denied(until - now);
            }
            tracing::info!(route = %self.route, probes = self.config.probes, "breaker half-open: probing");
            state.phase = Phase::HalfOpen { permits_left: self.config.probes, successes: 0 };
        }
        match &mut state.phase {
            Phase::HalfOpen { permits_left: 0, .. } => Permit::Denied(self.probe_wait()),
            Phase::HalfOpen { permits_left, .. } => {
                *permits_left -= 1;
                Permit::Allowed
            }
            _ => Permit::Allowed,
        }
    }

    /// Whether every call is let through now (no probing, nothing refused).
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.lock().phase, Phase::Closed)
    }

    /// While open: how long until probes are let through. `None` otherwise.
    pub(crate) fn blocked_for(&self) -> Option<Duration> {
        match self.lock().phase {
            Phase::Open { until } => until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()),
            _ => None,
        }
    }

    /// For the `switchyard_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    /// Open past `open_for` is half-open already: the next message is a probe
    /// (a quiet route would otherwise show open until its next message).
    pub(crate) fn state_code(&self) -> i64 {
        match self.lock().phase {
            Phase::Closed => 0,
            Phase::Open { until } if Instant::now() < until => 2,
            Phase::Open { .. } | Phase::HalfOpen { .. } => 1,
        }
    }

    /// Whether only probes are let through (a driver pulls little then).
    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.lock().phase, Phase::HalfOpen { .. })
    }

    /// Record the result of a call that had a permit.
    pub(crate) fn record(&self, success: bool) {
        let mut state = self.lock();
        let now = Instant::now();
        match state.phase {
            // A call that started before the breaker opened: already counted.
            Phase::Open { .. } => {}
            Phase::HalfOpen { permits_left, successes } => {
                if !success {
                    self.open(&mut state, now, "a probe failed");
                } else if successes + 1 >= self.config.probes {
                    tracing::info!(route = %self.route, "breaker closed: probes succeeded");
                    state.phase = Phase::Closed;
                    state.consecutive_failures = 0;
                    state.window.clear();
                } else {
                    state.phase = Phase::HalfOpen { permits_left, successes: successes + 1 };
                }
            }
            Phase::Closed => {
                state.consecutive_failures = if success { 0 } else { state.consecutive_failures + 1 };
                state.window.push_back((now, !success));
                while state.window.front().is_some_and(|(at, _)| now.duration_since(*at) > self.config.window) {
                    state.window.pop_front();
                }
                if state.consecutive_failures >= self.config.consecutive_failures {
                    let why = format!("{} consecutive failures", state.consecutive_failures);
                    self.open(&mut state, now, &why);
                } else if let Some(rate) = self.config.failure_rate {
                    let calls = state.window.len();
                    let failures = state.window.iter().filter(|(_, failed)| *failed).count();
                    if calls >= self.config.min_calls as usize && failures as f64 >= rate * calls as f64 {
                        let why = format!("{failures} of {calls} calls failed within {:?}", self.config.window);
                        self.open(&mut state, now, &why);
                    }
                }
            }
        }
    }

    fn open(&self, state: &mut State, now: Instant, why: &str) {
        tracing::warn!(route = %self.route, open_for = ?self.config.open_for, "breaker open: {why}");
        state.phase = Phase::Open { until: now + self.config.open_for };
        state.consecutive_failures = 0;
        state.window.clear();
    }

    /// How long a message waits for a probe slot that is taken.
    fn probe_wait(&self) -> Duration {
        (self.config.open_for / 10).max(Duration::from_millis(50))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(open_for: Duration) -> BreakerConfig {
        BreakerConfig { consecutive_failures: 3, failure_rate: None, window: Duration::from_secs(30), min_calls: 20, open_for, probes: 2 }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_probes() {
        let breaker = Breaker::new("r", &config(Duration::from_millis(30)));
        for _ in 0..2 {
            assert_eq!(breaker.try_acquire(), Permit::Allowed);
            breaker.record(false);
        }
        breaker.record(true); // a success resets the run
        for _ in 0..3 {
            breaker.record(false);
        }
        assert!(matches!(breaker.try_acquire(), Permit::Denied(_)), "open");
        assert!(breaker.blocked_for().is_some());
        assert_eq!(breaker.state_code(), 2);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.state_code(), 1, "past open_for, before any message: half-open");
        assert_eq!(breaker.try_acquire(), Permit::Allowed, "first probe");
        assert_eq!(breaker.try_acquire(), Permit::Allowed, "second probe");
        assert!(matches!(breaker.try_acquire(), Permit::Denied(_)), "only the probes pass");
        assert!(breaker.is_probing());
        breaker.record(true);
        breaker.record(true);
        assert_eq!(breaker.try_acquire(), Permit::Allowed, "closed again");
        assert!(!breaker.is_probing());
    }

    #[test]
    fn a_failed_probe_reopens() {
        let breaker = Breaker::new("r", &config(Duration::from_millis(20)));
        for _ in 0..3 {
            breaker.record(false);
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.try_acquire(), Permit::Allowed);
        breaker.record(false);
        assert!(matches!(breaker.try_acquire(), Permit::Denied(_)));
    }

    #[test]
    fn opens_on_failure_rate_over_the_window() {
        let mut cfg = config(Duration::from_secs(10));
        cfg.consecutive_failures = 1000;
        cfg.failure_rate = Some(0.5);
        cfg.min_calls = 10;
        let breaker = Breaker::new("r", &cfg);
        for i in 0..9 {
            breaker.record(i % 2 == 0);
        }
        assert_eq!(breaker.try_acquire(), Permit::Allowed, "below min_calls");
        breaker.record(false); // 10 calls, 5 failures
        assert!(matches!(breaker.try_acquire(), Permit::Denied(_)));
    }
}
