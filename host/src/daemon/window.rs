//! Each route's last ten seconds, for `switchyard status` and `switchyard top`.
//!
//! A task started with the host reads the cumulative counters of every live
//! route once a second (and the host once more after every apply, so a new
//! route has a sample from its start) into a ring of [`SAMPLES`] samples; a
//! status request compares a reading taken then with the oldest sample at most
//! [`WINDOW`] old.
//! Nothing is added to the message path: the counters read are those
//! `/metrics` exports (`switchyard_messages_total` and
//! `switchyard_handler_duration_seconds`).
//!
//! What the figures mean. Each outcome counter counts one end of an attempt
//! (`telemetry::Outcome`); over the window:
//!
//! - **attempts** = ack + reply + retry + dead_letter + dead-letter failures +
//!   shed + breaker_open: every end of an attempt, once. `reject` and
//!   `plugin_error` are not added: each is followed, for the same attempt, by a
//!   dead letter (or its failure) or a retry. A message retried twice and then
//!   acked is three attempts.
//! - **rate** (msg/s) = attempts / the window's seconds.
//! - **handled** = attempts − shed − breaker_open: the attempts that called
//!   the plugin.
//! - **error rate** = (retry + dead_letter + dead-letter failures) / handled:
//!   the share of handled attempts that did not end in an ack or a reply —
//!   plugin errors (trap, timeout, memory, fuel), retries the plugin asked for,
//!   rejects, publishes or replies NATS did not take. `None` when nothing was
//!   handled. Shed and breaker-refused messages are not errors here: the
//!   rate limit and the breaker column show those.
//! - **p50 / p99** = quantiles of the plugin call's duration over the calls
//!   that ended in the window, each the upper bound of the histogram bucket it
//!   falls in (buckets double from 50 µs; `telemetry::latency`). `None`
//!   without calls.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::gauges::LiveRoutes;
use crate::telemetry::latency::Reading;
use crate::telemetry::{Outcome, RouteMetrics};

/// How far back the figures look.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// How often the routes are sampled.
const EVERY: Duration = Duration::from_secs(1);
/// Samples kept per route: ten seconds' worth at one a second, and one more
/// so that one at most [`WINDOW`] old is always at hand.
const SAMPLES: usize = 11;

/// One route's cumulative counters at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    at: Instant,
    /// Indexed like [`Outcome::ALL`].
    outcomes: [u64; Outcome::ALL.len()],
    dead_letter_failures: u64,
    handler: Reading,
}

impl Sample {
    pub(crate) fn take(metrics: &RouteMetrics) -> Sample {
        Sample {
            at: Instant::now(),
            outcomes: Outcome::ALL.map(|o| metrics.counted(o)),
            dead_letter_failures: metrics.dead_letter_failures.get(),
            handler: metrics.handler_duration.read(),
        }
    }

    fn counted(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize]
    }
}

/// What a route did between two samples; see the module's documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    pub rate_per_sec: f64,
    pub error_rate: Option<f64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Figures {
    pub(crate) fn between(base: &Sample, now: &Sample) -> Figures {
        let delta = |o: Outcome| now.counted(o).saturating_sub(base.counted(o));
        let dead_letter_failures = now.dead_letter_failures.saturating_sub(base.dead_letter_failures);
        let failed = delta(Outcome::Retry) + delta(Outcome::DeadLetter) + dead_letter_failures;
        let handled = delta(Outcome::Ack) + delta(Outcome::Reply) + failed;
        let attempts = handled + delta(Outcome::Shed) + delta(Outcome::BreakerOpen);
        let seconds = now.at.saturating_duration_since(base.at).as_secs_f64();
        let calls = now.handler.since(&base.handler);
        Figures {
            rate_per_sec: if seconds > 0.0 { attempts as f64 / seconds } else { 0.0 },
            error_rate: (handled > 0).then(|| failed as f64 / handled as f64),
            p50: calls.quantile(0.5),
            p99: calls.quantile(0.99),
        }
    }
}

/// One route's last [`SAMPLES`] samples, oldest first.
#[derive(Debug, Default)]
struct Ring(VecDeque<Sample>);

impl Ring {
    fn push(&mut self, sample: Sample) {
        if self.0.len() == SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back(sample);
    }

    /// The oldest sample at most [`WINDOW`] before `now`; when every sample
    /// is older (the sampler fell behind), the newest, so the window is longer
    /// but the figures still averages over it. `None` before the first sample.
    fn base(&self, now: Instant) -> Option<&Sample> {
        self.0.iter().find(|s| now.saturating_duration_since(s.at) <= WINDOW).or_else(|| self.0.back())
    }
}

/// Every live route's ring, by route name.
#[derive(Debug, Default)]
pub(crate) struct Windows(Mutex<HashMap<String, Ring>>);

impl Windows {
    /// Sample each of `routes`; forget the routes no longer among them.
    pub(crate) fn sample<'a>(&self, routes: impl IntoIterator<Item = (&'a str, &'a RouteMetrics)>) {
        let samples: Vec<(&str, Sample)> = routes.into_iter().map(|(name, metrics)| (name, Sample::take(metrics))).collect();
        let mut rings = self.0.lock().unwrap_or_else(|p| p.into_inner());
        rings.retain(|name, _| samples.iter().any(|(live, _)| live == name));
        for (name, sample) in samples {
            rings.entry(name.to_owned()).or_default().push(sample);
        }
    }

    /// `route`'s figures from its oldest sample in the window up to now; all
    /// empty before the route's first sample.
    pub(crate) fn figures(&self, route: &str, metrics: &RouteMetrics) -> Figures {
        let now = Sample::take(metrics);
        let rings = self.0.lock().unwrap_or_else(|p| p.into_inner());
        rings.get(route).and_then(|ring| ring.base(now.at)).map(|base| Figures::between(base, &now)).unwrap_or_default()
    }
}

/// The task that samples the live routes every second; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Sampler(JoinHandle<()>);

impl Sampler {
    pub(crate) fn spawn(windows: Arc<Windows>, live: Arc<LiveRoutes>) -> Sampler {
        Sampler(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(EVERY);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let routes = live.load();
                windows.sample(routes.iter().map(|route| (route.name.as_str(), &route.metrics)));
            }
        }))
    }

    pub(crate) fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;

    /// A sample at `at` with `counts` of (outcome, count) and handler calls of
    /// the given durations.
    fn sample(at: Instant, counts: &[(Outcome, u64)], dead_letter_failures: u64, calls: &[Duration]) -> Sample {
        let handler = crate::telemetry::latency::Latency::default();
        for &took in calls {
            handler.observe(took);
        }
        let mut outcomes = [0; Outcome::ALL.len()];
        for &(outcome, count) in counts {
            outcomes[outcome as usize] = count;
        }
        Sample { at, outcomes, dead_letter_failures, handler: handler.read() }
    }

    #[test]
    fn rate_counts_every_end_of_an_attempt_once_and_errors_only_among_handled_ones() {
        let t0 = Instant::now();
        let base = sample(t0, &[(Outcome::Ack, 100), (Outcome::Retry, 7)], 0, &[Duration::from_secs(5); 3]);
        let mut calls = vec![Duration::from_secs(5); 3];
        // In the window: 60 acks, 10 replies, 20 retries (5 of them plugin
        // errors), 8 rejects each dead-lettered, 1 dead letter not stored, 6
        // shed, 5 refused by the breaker: 110 attempt ends, 99 handled, 29 failed.
        calls.extend(std::iter::repeat_n(Duration::from_micros(30), 90));
        calls.extend(std::iter::repeat_n(Duration::from_millis(3), 9));
        let now = sample(
            t0 + Duration::from_secs(10),
            &[
                (Outcome::Ack, 160),
                (Outcome::Reply, 10),
                (Outcome::Retry, 27),
                (Outcome::PluginError, 5),
                (Outcome::Reject, 8),
                (Outcome::DeadLetter, 8),
                (Outcome::Shed, 6),
                (Outcome::BreakerOpen, 5),
            ],
            1,
            &calls,
        );
        let figures = Figures::between(&base, &now);
        assert!((figures.rate_per_sec - 11.0).abs() < 1e-9, "{figures:?}");
        let error_rate = figures.error_rate.expect("handled attempts");
        assert!((error_rate - 29.0 / 99.0).abs() < 1e-9, "{figures:?}");
        // 99 calls in the window (the three 5 s calls before it do not count):
        // 90 in the 50 µs bucket, 9 in the 3.2 ms one.
        assert_eq!(figures.p50, Some(Duration::from_micros(50)));
        assert_eq!(figures.p99, Some(Duration::from_secs_f64(0.0032)));
    }

    #[test]
    fn a_quiet_window_has_no_error_rate_nor_quantiles() {
        let t0 = Instant::now();
        let base = sample(t0, &[(Outcome::Ack, 5)], 0, &[Duration::from_millis(1)]);
        let now = sample(t0 + Duration::from_secs(10), &[(Outcome::Ack, 5), (Outcome::Shed, 20)], 0, &[Duration::from_millis(1)]);
        let figures = Figures::between(&base, &now);
        assert_eq!(figures, Figures { rate_per_sec: 2.0, error_rate: None, p50: None, p99: None });
        // The same moment twice: no rate rather than a division by zero.
        assert_eq!(Figures::between(&base, &base).rate_per_sec, 0.0);
    }

    #[test]
    fn the_base_is_the_oldest_sample_at_most_ten_seconds_old() {
        let t0 = Instant::now();
        let mut ring = Ring::default();
        assert!(ring.base(t0).is_none());
        for second in 0..15 {
            ring.push(sample(t0 + Duration::from_secs(second), &[(Outcome::Ack, second)], 0, &[]));
        }
        assert_eq!(ring.0.len(), SAMPLES);
        assert_eq!(ring.0.front().map(|s| s.counted(Outcome::Ack)), Some(4));
        let at = |s: Option<&Sample>| s.map(|s| s.at.duration_since(t0));
        // Now is 14.5 s: the samples at 4 s are 10.5 s old, the one at 5 s 9.5 s.
        assert_eq!(at(ring.base(t0 + Duration::from_millis(14_500))), Some(Duration::from_secs(5)));
        assert_eq!(at(ring.base(t0 + Duration::from_secs(14))), Some(Duration::from_secs(4)));
        // The sampler stalled for a minute: the newest sample, a longer window.
        assert_eq!(at(ring.base(t0 + Duration::from_secs(74))), Some(Duration::from_secs(14)));
    }

    #[test]
    fn windows_follow_the_live_routes() {
        let metrics = Metrics::default();
        let (a, b) = (metrics.route("a"), metrics.route("b"));
        let windows = Windows::default();
        assert_eq!(windows.figures("a", &a), Figures::default(), "before the first sample");
        windows.sample([("a", &a), ("b", &b)]);
        a.count(Outcome::Reply);
        a.count(Outcome::Retry);
        a.handler_took(Duration::from_micros(120));
        a.handler_took(Duration::from_micros(120));
        let figures = windows.figures("a", &a);
        assert!(figures.rate_per_sec > 0.0, "{figures:?}");
        assert_eq!(figures.error_rate, Some(0.5));
        assert_eq!(figures.p50, Some(Duration::from_micros(200)));
        assert_eq!(windows.figures("b", &b).error_rate, None);
        // `b` is gone from the live routes: its ring goes too.
        windows.sample([("a", &a)]);
        assert_eq!(windows.figures("b", &b), Figures::default());
        assert!(windows.figures("a", &a).rate_per_sec > 0.0);
    }
}
