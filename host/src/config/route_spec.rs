//! A validated route as the runtime uses it: the kind of route is a type, so
//! the drivers never work out from optional keys whether a route is core or
//! JetStream, and keys of the other kind do not exist here at all (validation
//! refuses them in the file). Values come out of here ready to use.

use std::time::Duration;

use super::schema::{BreakerConfig, KeySource, RateLimitConfig, RetryConfig, RouteConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    pub plugin: String,
    /// At least 1.
    pub concurrency: usize,
    /// The backoff schedule (the delays; core's attempt bounds are in [`CoreSpec`]).
    pub retry: RetryConfig,
    pub rate_limit: Option<RateLimitConfig>,
    pub breaker: Option<BreakerConfig>,
    pub order_by: Option<KeySource>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Core(CoreSpec),
    JetStream(JetStreamSpec),
    Timer(TimerSpec),
}

/// A timer route: a tick on its schedule, handled like a core message
/// (retried in process, then dead-lettered).
#[derive(Debug, Clone, PartialEq)]
pub struct TimerSpec {
    pub schedule: Schedule,
    /// Attempts in process before the dead letter; at least 1.
    pub attempts: u64,
    pub max_elapsed: Duration,
}

/// When a timer route's ticks fall: the same instants on every host.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// At each multiple of this since the Unix epoch.
    Every(Duration),
    /// At each time the expression matches, in UTC.
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The first tick after `now_ms` (Unix milliseconds); `None` when a cron
    /// expression never matches again.
    pub fn next_after(&self, now_ms: u64) -> Option<u64> {
        match self {
            Schedule::Every(every) => {
                let every_ms = (every.as_millis() as u64).max(1);
                Some((now_ms / every_ms + 1) * every_ms)
            }
            Schedule::Cron(cron) => {
                let now = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(i64::try_from(now_ms).ok()?)?;
                let next = cron.find_next_occurrence(&now, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron(cron) => write!(f, "cron `{}`", cron.pattern),
        }
    }
}

/// A core route: subscriptions, in-process retries.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSpec {
    /// Not empty.
    pub subjects: Vec<String>,
    pub queue: Option<String>,
    /// Attempts in process before the dead letter; at least 1.
    pub attempts: u64,
    /// Retrying stops once this long has passed since the first attempt.
    pub max_elapsed: Duration,
}

/// A JetStream route: a durable pull consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamSpec {
    pub stream: String,
    pub durable: String,
    /// Empty: the whole stream.
    pub filter_subjects: Vec<String>,
    /// Failed attempts before the dead letter, counted by the host (the
    /// server's limit is unlimited); -1: never.
    pub max_deliver: i64,
    pub ack_wait: Duration,
    /// Messages per pull, already capped at the rate limit's burst.
    pub batch: usize,
    pub max_ack_pending: i64,
    pub double_ack: bool,
    pub update_consumer: bool,
}

impl From<&RouteConfig> for RouteSpec {
    fn from(config: &RouteConfig) -> Self {
        let kind = match &config.stream {
            None if config.is_timer() => Kind::Timer(TimerSpec {
                schedule: match &config.cron {
                    Some(cron) => Schedule::Cron(Box::new(cron.clone())),
                    None => Schedule::Every(config.every.unwrap_or_default()),
                },
                attempts: u64::from(config.retry.attempts.max(1)),
                max_elapsed: config.retry.max_elapsed,
            }),
            None => Kind::Core(CoreSpec {
                subjects: config.subjects.clone(),
                queue: config.queue.clone(),
                attempts: u64::from(config.retry.attempts.max(1)),
                max_elapsed: config.retry.max_elapsed,
            }),
            Some(stream) => {
                // A rate-limited route pulls no more than its burst, so pulled
                // messages do not age while they wait for a permit.
                let burst = config.rate_limit.as_ref().map(|limit| limit.burst.unwrap_or(limit.rate).max(1) as usize);
                Kind::JetStream(JetStreamSpec {
                    stream: stream.get_ref().clone(),
                    durable: config.durable_name().to_owned(),
                    filter_subjects: config.subjects.clone(),
                    max_deliver: config.max_deliver,
                    ack_wait: config.ack_wait,
                    batch: config.batch.max(1).min(burst.unwrap_or(usize::MAX)),
                    max_ack_pending: config.max_ack_pending,
                    double_ack: config.double_ack,
                    update_consumer: config.update_consumer,
                })
            }
        };
        Self {
            name: config.name.get_ref().clone(),
            plugin: config.plugin.get_ref().clone(),
            concurrency: config.concurrency.max(1),
            retry: config.retry.clone(),
            rate_limit: config.rate_limit.clone(),
            breaker: config.breaker.clone(),
            order_by: config.order_by.clone(),
            kind,
        }
    }
}

impl RouteSpec {
    /// What it serves, for the startup summary and `switchyard status`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::JetStream(js) => format!(
                "jetstream {}/{} (filter: {})",
                js.stream,
                js.durable,
                if js.filter_subjects.is_empty() { "all".into() } else { js.filter_subjects.join(", ") }
            ),
            Kind::Core(core) => match &core.queue {
                Some(queue) => format!("core {} (queue {queue})", core.subjects.join(", ")),
                None => format!("core {}", core.subjects.join(", ")),
            },
            Kind::Timer(timer) => format!("timer {}", timer.schedule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse_routes(text: &str) -> Vec<RouteConfig> {
        toml::from_str::<Config>(text).expect("valid routes").routes
    }

    #[test]
    fn the_kind_of_route_is_a_type_with_its_own_keys() {
        let routes = parse_routes(
            r#"
[[routes]]
name = "greet"
plugin = "p"
subjects = ["greet.>"]
queue = "greeters"
retry = { attempts = 0 }

[[routes]]
name = "orders"
plugin = "p"
stream = "ORDERS"
batch = 500
rate_limit = { rate = 20, burst = 50 }
"#,
        );
        let core = RouteSpec::from(&routes[0]);
        let Kind::Core(c) = &core.kind else { panic!("core: {core:?}") };
        assert_eq!((c.queue.as_deref(), c.attempts), (Some("greeters"), 1), "attempts clamped to 1");
        assert_eq!(core.describe(), "core greet.> (queue greeters)");

        let js = RouteSpec::from(&routes[1]);
        let Kind::JetStream(j) = &js.kind else { panic!("jetstream: {js:?}") };
        assert_eq!((j.durable.as_str(), j.batch), ("orders", 50), "durable defaults to the name; batch capped at the burst");
        assert_eq!(js.describe(), "jetstream ORDERS/orders (filter: all)");
    }
}
