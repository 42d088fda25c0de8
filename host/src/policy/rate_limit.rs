//! A route's rate limit: governor's GCRA token bucket, for the whole route or per
//! key, with the number of remembered keys bounded.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchyard_abi::Message;

use crate::config::{KeySource, RateLimitConfig};

/// Keys beyond `max_keys` share this bucket, so an unbounded key space cannot
/// grow the host's memory.
const OVERFLOW_KEY: &str = "\u{0}overflow";

pub(crate) struct RateLimit {
    limiter: Limiter,
    key: Option<KeySource>,
    max_keys: usize,
    /// Core routes: how long a message may wait before it is shed.
    pub max_wait: Duration,
}

enum Limiter {
    Route(DefaultDirectRateLimiter),
    Keyed(DefaultKeyedRateLimiter<String>),
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("key", &self.key).field("max_keys", &self.max_keys).finish_non_exhaustive()
    }
}

impl RateLimit {
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        let rate = config.rate.max(1);
        let burst = NonZeroU32::new(config.burst.unwrap_or(rate).max(1)).unwrap_or(NonZeroU32::MIN);
        let period = (config.per / rate).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        let limiter = match config.key {
            Some(_) => Limiter::Keyed(RateLimiter::keyed(quota)),
            None => Limiter::Route(RateLimiter::direct(quota)),
        };
        Self { limiter, key: config.key.clone(), max_keys: config.max_keys, max_wait: config.max_wait }
    }

    /// Whether the limit depends on the message (then a permit can only be
    /// taken once the message is in hand).
    pub(crate) fn is_keyed(&self) -> bool {
        matches!(self.limiter, Limiter::Keyed(_))
    }

    /// Wait for a permit for `msg` (`None`: an unkeyed limit, before pulling).
    pub(crate) async fn until_ready(&self, msg: Option<&Message>) {
        match &self.limiter {
            Limiter::Route(limiter) => limiter.until_ready().await,
            Limiter::Keyed(limiter) => {
                let key = self.bucket(limiter, msg);
                limiter.until_key_ready(&key).await;
            }
        }
    }

    /// The bucket of `msg`: its key, or the shared overflow bucket while
    /// `max_keys` keys are remembered.
    fn bucket(&self, limiter: &DefaultKeyedRateLimiter<String>, msg: Option<&Message>) -> String {
        let key = msg.zip(self.key.as_ref()).and_then(|(msg, source)| source.extract(msg)).unwrap_or_default();
        if limiter.len() >= self.max_keys {
            // Forget keys whose buckets are full again before sharing one.
            limiter.retain_recent();
            if limiter.len() >= self.max_keys {
                return OVERFLOW_KEY.to_owned();
            }
        }
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn config(rate: u32, burst: u32, key: Option<KeySource>) -> RateLimitConfig {
        RateLimitConfig { rate, per: Duration::from_secs(1), burst: Some(burst), key, max_keys: 2, max_wait: Duration::from_secs(1) }
    }

    #[tokio::test]
    async fn permits_come_at_the_configured_rate() {
        let limit = RateLimit::new(&config(100, 1, None));
        let started = Instant::now();
        for _ in 0..21 {
            limit.until_ready(None).await;
        }
        // 1 immediately, then 20 at 10 ms each.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    }

    #[tokio::test]
    async fn keys_have_their_own_buckets() {
        let limit = RateLimit::new(&config(1, 1, Some(KeySource::SubjectToken(1))));
        let a = Message { subject: "a.x".into(), ..Message::default() };
        let b = Message { subject: "b.x".into(), ..Message::default() };
        let started = Instant::now();
        limit.until_ready(Some(&a)).await;
        limit.until_ready(Some(&b)).await;
        assert!(started.elapsed() < Duration::from_millis(100), "different keys do not wait for each other");
    }
}
