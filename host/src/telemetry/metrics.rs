//! The host's metrics, exported at `/metrics` in the Prometheus text format by
//! `prometheus-client`. Labels stay bounded: route, plugin, version, never a
//! subject or a key.
//!
//! The message path touches only handles resolved once per route
//! ([`RouteMetrics`]): a counter bump or a gauge step is one atomic, a
//! histogram observation three (`latency.rs`). What is cheaper to read than to
//! keep up (instances, memory, breaker phase, versions serving) is read at
//! scrape time by collectors the daemon registers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::latency::Latency;

/// What became of one step of a message's handling: the `outcome` label of
/// `switchyard_messages_total`. A message retried twice and then acked counts
/// two `retry` and one `ack`; a call that trapped counts `plugin_error`, and
/// then `retry` or `dead_letter` for what followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; acked (JetStream) or done (core, no reply wanted).
    Ack,
    /// Handled; the reply was sent.
    Reply,
    /// An attempt failed and the message will be tried again.
    Retry,
    /// The plugin rejected the message (it is dead-lettered next).
    Reject,
    /// Its dead letter was stored.
    DeadLetter,
    /// Turned away by the rate limit (core: the wait ran out).
    Shed,
    /// Refused by an open breaker; the plugin was not called.
    BreakerOpen,
    /// The plugin call failed: trap, timeout, memory, fuel, bad outcome.
    PluginError,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ack,
        Outcome::Reply,
        Outcome::Retry,
        Outcome::Reject,
        Outcome::DeadLetter,
        Outcome::Shed,
        Outcome::BreakerOpen,
        Outcome::PluginError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ack => "ack",
            Outcome::Reply => "reply",
            Outcome::Retry => "retry",
            Outcome::Reject => "reject",
            Outcome::DeadLetter => "dead_letter",
            Outcome::Shed => "shed",
            Outcome::BreakerOpen => "breaker_open",
            Outcome::PluginError => "plugin_error",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcome {
    route: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginKind {
    plugin: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KvCall {
    plugin: String,
    op: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOp {
    plugin: String,
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteResult {
    route: String,
    result: &'static str,
}

/// What a reload came to: the `result` label of `switchyard_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Refused,
    RolledBack,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Refused => "refused",
            ReloadResult::RolledBack => "rolled_back",
        }
    }
}

/// Every metric the host keeps, and the registry that exports them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<RouteOutcome, Counter>,
    handler_duration: Family<RouteLabel, Latency>,
    message_duration: Family<RouteLabel, Latency>,
    rate_limit_wait: Family<RouteLabel, Latency>,
    in_flight: Family<RouteLabel, Gauge>,
    dead_letters: Family<RouteLabel, Counter>,
    dead_letter_failures: Family<RouteLabel, Counter>,
    publish_failures: Family<RouteLabel, Counter>,
    batch_calls: Family<RouteLabel, Counter>,
    batched_messages: Family<RouteLabel, Counter>,
    consumer_pending: Family<RouteLabel, Gauge>,
    consumer_ack_pending: Family<RouteLabel, Gauge>,
    consumer_redelivered: Family<RouteLabel, Gauge>,
    traps: Family<PluginKind, Counter>,
    kv_calls: Family<KvCall, Counter>,
    kv_duration: Family<PluginOp, Latency>,
    requests: Family<PluginKind, Counter>,
    request_duration: Family<PluginLabel, Latency>,
    reloads: Family<ResultLabel, Counter>,
    rollout_share: Family<RouteLabel, Gauge>,
    shadow_comparisons: Family<RouteResult, Counter>,
    pub nats_connected: Gauge,
    /// 1 while `/readyz` would answer 200.
    pub ready: Gauge,
    pub nats_reconnects: Counter,
    pub slow_consumers: Counter,
    /// Each route's handles, kept so the host-wide totals can be summed and a
    /// route restarted by a reload keeps counting where it left off.
    routes: Mutex<BTreeMap<String, RouteMetrics>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Metrics {
    /// The metrics, with `collectors` (read at each scrape) registered beside them.
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("switchyard");
        let metrics = Metrics {
            registry: Registry::default(),
            messages: Family::default(),
            handler_duration: Family::default(),
            message_duration: Family::default(),
            rate_limit_wait: Family::default(),
            in_flight: Family::default(),
            dead_letters: Family::default(),
            dead_letter_failures: Family::default(),
            publish_failures: Family::default(),
            batch_calls: Family::default(),
            batched_messages: Family::default(),
            consumer_pending: Family::default(),
            consumer_ack_pending: Family::default(),
            consumer_redelivered: Family::default(),
            traps: Family::default(),
            kv_calls: Family::default(),
            kv_duration: Family::default(),
            requests: Family::default(),
            request_duration: Family::default(),
            reloads: Family::default(),
            rollout_share: Family::default(),
            shadow_comparisons: Family::default(),
            nats_connected: Gauge::default(),
            ready: Gauge::default(),
            nats_reconnects: Counter::default(),
            slow_consumers: Counter::default(),
            routes: Mutex::default(),
        };
        let m = &metrics;
        registry.register("messages", "Messages by route and what became of them (one count per attempt's end)", m.messages.clone());
        registry.register("handler_duration_seconds", "Time in the plugin call", m.handler_duration.clone());
        registry.register("message_duration_seconds", "Time from receipt to settlement", m.message_duration.clone());
        registry.register("rate_limit_wait_seconds", "Time waited for a rate-limit permit", m.rate_limit_wait.clone());
        registry.register("in_flight", "Messages being handled now", m.in_flight.clone());
        registry.register("dead_letters", "Dead letters stored", m.dead_letters.clone());
        registry.register(
            "dead_letter_failures",
            "Dead letters the stream did not take (the message is kept)",
            m.dead_letter_failures.clone(),
        );
        registry.register("publish_failures", "Plugin publishes or replies NATS did not take", m.publish_failures.clone());
        registry.register(
            "batch_calls",
            "Plugin calls made with several messages at once (a failed one is followed by single calls)",
            m.batch_calls.clone(),
        );
        registry.register("batched_messages", "Messages whose outcome came from a batch call", m.batched_messages.clone());
        registry.register(
            "consumer_pending",
            "Messages in the stream not yet delivered to the route's consumer",
            m.consumer_pending.clone(),
        );
        registry.register(
            "consumer_ack_pending",
            "Messages delivered to the route's consumer and not yet acked",
            m.consumer_ack_pending.clone(),
        );
        registry.register("consumer_redelivered", "Messages the route's consumer delivered more than once", m.consumer_redelivered.clone());
        registry.register("plugin_traps", "Plugin calls that failed, by kind: trap, timeout, memory, fuel, abi", m.traps.clone());
        registry.register(
            "kv_calls",
            "Key-value calls plugins made, by operation and result: ok, not_found, conflict, not_allowed, unavailable, invalid, limit, too_large, other",
            m.kv_calls.clone(),
        );
        registry.register("kv_duration_seconds", "Time a plugin's key-value call took", m.kv_duration.clone());
        registry.register(
            "plugin_requests",
            "Requests plugins sent through the host, by result (`kind`): ok, no_responders, timed_out, not_allowed, unavailable, invalid, limit, other",
            m.requests.clone(),
        );
        registry.register("plugin_request_duration_seconds", "Time a plugin's request waited for its reply", m.request_duration.clone());
        registry.register("reloads", "Reloads by result: applied, refused, rolled_back", m.reloads.clone());
        registry.register(
            "rollout_share_percent",
            "Share of a route's messages that a canary version gets (0 without one)",
            m.rollout_share.clone(),
        );
        registry.register(
            "shadow_comparisons",
            "Messages a shadow version also handled, by result: same, different (outcome, publishes or reply), dropped (not run: the shadow was busy)",
            m.shadow_comparisons.clone(),
        );
        registry.register("nats_connected", "1 while the NATS connection is up", m.nats_connected.clone());
        registry.register("ready", "1 while the host is ready (/readyz answers 200)", m.ready.clone());
        registry.register("nats_reconnects", "Reconnections to NATS", m.nats_reconnects.clone());
        registry.register(
            "slow_consumer_events",
            "Times the NATS client dropped messages for a slow subscription",
            m.slow_consumers.clone(),
        );
        // Every result from the start: an alert on a rate needs the series to exist.
        for result in [ReloadResult::Applied, ReloadResult::Refused, ReloadResult::RolledBack] {
            m.reloads_counter(result);
        }
        for collector in collectors {
            registry.register_collector(collector);
        }
        root.register_collector(Box::new(super::process::Process));
        Metrics { registry: root, ..metrics }
    }

    /// The handles `route` bumps on the message path.
    pub fn route(&self, route: &str) -> RouteMetrics {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = routes.get(route) {
            return handles.clone();
        }
        let label = RouteLabel { route: route.to_owned() };
        let handles = RouteMetrics {
            outcomes: Outcome::ALL
                .map(|o| self.messages.get_or_create_owned(&RouteOutcome { route: route.to_owned(), outcome: o.label() })),
            handler_duration: self.handler_duration.get_or_create_owned(&label),
            message_duration: self.message_duration.get_or_create_owned(&label),
            rate_limit_wait: self.rate_limit_wait.get_or_create_owned(&label),
            in_flight: self.in_flight.get_or_create_owned(&label),
            dead_letters: self.dead_letters.get_or_create_owned(&label),
            dead_letter_failures: self.dead_letter_failures.get_or_create_owned(&label),
            publish_failures: self.publish_failures.get_or_create_owned(&label),
            batch_calls: self.batch_calls.get_or_create_owned(&label),
            batched_messages: self.batched_messages.get_or_create_owned(&label),
        };
        routes.insert(route.to_owned(), handles.clone());
        handles
    }

    /// The gauges of a JetStream route's consumer, as the server reports it.
    pub fn consumer(&self, route: &str) -> ConsumerGauges {
        let label = RouteLabel { route: route.to_owned() };
        ConsumerGauges {
            pending: self.consumer_pending.get_or_create_owned(&label),
            ack_pending: self.consumer_ack_pending.get_or_create_owned(&label),
            redelivered: self.consumer_redelivered.get_or_create_owned(&label),
        }
    }

    /// The consumer's pending count as last read (every `[admin]
    /// consumer_info_interval`); `None` unless a JetStream route set it up.
    pub fn consumer_pending(&self, route: &str) -> Option<u64> {
        self.consumer_pending.get(&RouteLabel { route: route.to_owned() }).map(|g| u64::try_from(g.get()).unwrap_or(0))
    }

    /// A route removed by a reload: its consumer's gauges go (a stale lag would
    /// keep an alert firing); its counters stay, as counters do, until the
    /// restart, and its in-flight gauge, drained, reads 0.
    pub fn forget_route(&self, route: &str) {
        let label = RouteLabel { route: route.to_owned() };
        for family in [&self.consumer_pending, &self.consumer_ack_pending, &self.consumer_redelivered] {
            family.remove(&label);
        }
    }

    /// A failed plugin call, by kind (rare: the family lookup is fine here).
    pub fn trap(&self, plugin: &str, kind: &'static str) {
        self.traps.get_or_create(&PluginKind { plugin: plugin.to_owned(), kind }).inc();
    }

    /// A plugin's key-value call `op` ended with `result` after `took`.
    pub fn kv_call(&self, plugin: &str, op: &'static str, result: &'static str, took: Duration) {
        self.kv_calls.get_or_create(&KvCall { plugin: plugin.to_owned(), op, result }).inc();
        self.kv_duration.get_or_create(&PluginOp { plugin: plugin.to_owned(), op }).observe(took);
    }

    /// A plugin's request ended with `result` after `took`.
    pub fn plugin_request(&self, plugin: &str, result: &'static str, took: Duration) {
        self.requests.get_or_create(&PluginKind { plugin: plugin.to_owned(), kind: result }).inc();
        self.request_duration.get_or_create(&PluginLabel { plugin: plugin.to_owned() }).observe(took);
    }

    pub fn reload(&self, result: ReloadResult) {
        self.reloads_counter(result).inc();
    }

    fn reloads_counter(&self, result: ReloadResult) -> Counter {
        self.reloads.get_or_create_owned(&ResultLabel { result: result.label() })
    }

    /// The figures `route`'s pool keeps of its rollouts.
    pub fn rollout(&self, route: &str) -> RolloutMetrics {
        let result = |result| self.shadow_comparisons.get_or_create_owned(&RouteResult { route: route.to_owned(), result });
        RolloutMetrics {
            rolled_back: self.reloads_counter(ReloadResult::RolledBack),
            share: self.rollout_share.get_or_create_owned(&RouteLabel { route: route.to_owned() }),
            shadow_same: result("same"),
            shadow_different: result("different"),
            shadow_dropped: result("dropped"),
        }
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// Host-wide totals of one outcome, summed over routes.
    pub fn total(&self, outcome: Outcome) -> u64 {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.values().map(|r| r.counted(outcome)).sum()
    }

    /// `name=value` pairs for the shutdown line and status replies.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let sum = |f: &dyn Fn(&RouteMetrics) -> u64| routes.values().map(f).sum::<u64>();
        let mut pairs: Vec<(&'static str, u64)> =
            Outcome::ALL.iter().map(|&o| (o.label(), sum(&|r: &RouteMetrics| r.counted(o)))).collect();
        pairs.push(("dead_letter_failures", sum(&|r| r.dead_letter_failures.get())));
        pairs.push(("publish_failures", sum(&|r| r.publish_failures.get())));
        pairs.push(("slow_consumer_events", self.slow_consumers.get()));
        for result in [ReloadResult::Applied, ReloadResult::Refused, ReloadResult::RolledBack] {
            let count = self.reloads.get(&ResultLabel { result: result.label() }).map_or(0, |c| c.get());
            pairs.push((reload_key(result), count));
        }
        pairs
    }
}

fn reload_key(result: ReloadResult) -> &'static str {
    match result {
        ReloadResult::Applied => "reloads_applied",
        ReloadResult::Refused => "reloads_refused",
        ReloadResult::RolledBack => "rollbacks",
    }
}

/// One route's handles; cloning shares them.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    outcomes: [Counter; 8],
    pub handler_duration: Latency,
    message_duration: Latency,
    rate_limit_wait: Latency,
    in_flight: Gauge,
    pub dead_letters: Counter,
    pub dead_letter_failures: Counter,
    pub publish_failures: Counter,
    pub batch_calls: Counter,
    pub batched_messages: Counter,
}

/// See [`Metrics::rollout`]; by default counted nowhere (a pool in unit tests).
#[derive(Debug, Clone, Default)]
pub struct RolloutMetrics {
    pub rolled_back: Counter,
    pub share: Gauge,
    pub shadow_same: Counter,
    pub shadow_different: Counter,
    pub shadow_dropped: Counter,
}

/// See [`Metrics::consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerGauges {
    pub pending: Gauge,
    pub ack_pending: Gauge,
    pub redelivered: Gauge,
}

impl RouteMetrics {
    pub fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }

    /// How many times `outcome` was counted on this route.
    pub fn counted(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].get()
    }

    /// Messages of this route being handled now.
    pub fn in_flight_now(&self) -> u64 {
        u64::try_from(self.in_flight.get()).unwrap_or(0)
    }

    pub fn handler_took(&self, took: Duration) {
        self.handler_duration.observe(took);
    }

    pub fn waited_for_permit(&self, took: Duration) {
        self.rate_limit_wait.observe(took);
    }

    /// Count a message in flight until the guard drops, then observe its
    /// receipt-to-settlement time.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight { metrics: self, since: std::time::Instant::now() }
    }
}

/// A message being handled; see [`RouteMetrics::in_flight`].
#[derive(Debug)]
pub struct InFlight<'a> {
    metrics: &'a RouteMetrics,
    since: std::time::Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics.message_duration.observe(self.since.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_per_route_and_summed_host_wide() {
        let metrics = Metrics::default();
        let a = metrics.route("a");
        a.count(Outcome::Ack);
        a.count(Outcome::Ack);
        metrics.route("b").count(Outcome::Ack);
        metrics.route("b").count(Outcome::DeadLetter);
        assert_eq!(metrics.total(Outcome::Ack), 3);
        let text = metrics.encode();
        assert!(text.contains("switchyard_messages_total{route=\"a\",outcome=\"ack\"} 2"), "{text}");
        assert!(text.contains("switchyard_messages_total{route=\"b\",outcome=\"dead_letter\"} 1"), "{text}");
        assert!(text.contains("# TYPE switchyard_handler_duration_seconds histogram"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }

    #[test]
    fn in_flight_counts_until_settled() {
        let metrics = Metrics::default();
        let route = metrics.route("r");
        let guard = route.in_flight();
        assert!(metrics.encode().contains("switchyard_in_flight{route=\"r\"} 1"));
        drop(guard);
        let text = metrics.encode();
        assert!(text.contains("switchyard_in_flight{route=\"r\"} 0"), "{text}");
        assert!(text.contains("switchyard_message_duration_seconds_count{route=\"r\"} 1"), "{text}");
    }
}
