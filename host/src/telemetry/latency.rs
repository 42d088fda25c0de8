//! A latency histogram whose every observation is three relaxed atomic adds
//! (no lock, unlike `prometheus_client`'s `Histogram`), and whose buckets can
//! be read back: `switchyard status` works out p50 and p99 over its last ten
//! seconds from two readings. Encoded as a classic Prometheus histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds, in seconds: 50 µs doubling to about 52 s (a warm wasm call
/// to a call at its timeout); then +Inf.
const BOUNDS: [f64; 21] = {
    let mut bounds = [0.0; 21];
    let mut i = 0;
    let mut bound = 0.000_05;
    while i < bounds.len() {
        bounds[i] = bound;
        bound *= 2.0;
        i += 1;
    }
    bounds
};

#[derive(Debug, Default)]
struct Inner {
    /// Per bucket, not cumulative; the last is +Inf.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<Inner>);

/// A reading of a [`Latency`]: per-bucket counts (not cumulative) and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub counts: Vec<u64>,
    pub sum: Duration,
}

impl Latency {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BOUNDS.partition_point(|&bound| bound < seconds);
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn read(&self) -> Reading {
        Reading {
            counts: self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum: Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

impl Reading {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed between `earlier` and this reading.
    pub fn since(&self, earlier: &Reading) -> Reading {
        let counts =
            self.counts.iter().zip(earlier.counts.iter().chain(std::iter::repeat(&0))).map(|(a, b)| a.saturating_sub(*b)).collect();
        Reading { counts, sum: self.sum.saturating_sub(earlier.sum) }
    }

    /// The `q` quantile (0–1), as the upper bound of the bucket it falls in
    /// (as Prometheus's `histogram_quantile` would, without interpolating);
    /// `None` without observations. Past the last bound: the last bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_secs_f64(BOUNDS[i.min(BOUNDS.len() - 1)]));
            }
        }
        Some(Duration::from_secs_f64(BOUNDS[BOUNDS.len() - 1]))
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reading = self.read();
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&reading.counts)
            .map(|(bound, count)| {
                cumulative += count;
                (bound, cumulative)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(reading.sum.as_secs_f64(), cumulative, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_observed_in_between() {
        let latency = Latency::default();
        latency.observe(Duration::from_secs(10));
        let before = latency.read();
        for _ in 0..98 {
            latency.observe(Duration::from_micros(30)); // bucket 0: ≤ 50 µs
        }
        latency.observe(Duration::from_micros(150)); // ≤ 200 µs
        latency.observe(Duration::from_millis(3)); // ≤ 3.2 ms
        let window = latency.read().since(&before);
        assert_eq!(window.count(), 100);
        assert_eq!(window.quantile(0.5), Some(Duration::from_micros(50)));
        assert_eq!(window.quantile(0.99), Some(Duration::from_micros(200)));
        assert_eq!(window.quantile(1.0), Some(Duration::from_secs_f64(0.0032)));
        assert_eq!(Reading::default().quantile(0.5), None);
    }
}
