//! One path for every message, whichever driver received it:
//!
//! rate limit → breaker → plugin call → verdict → settlement.
//!
//! Core and JetStream differ only in how a message is settled: [`Settle`] has
//! one back-end each (`core/settle.rs`, `jetstream/settle.rs`). Decided here,
//! once, for both: the order of the gates, what the breaker counts as a
//! failure, that a Reject from a plugin version on probation is retried, and
//! that a message counts as dead-lettered only once its dead letter is stored.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_abi::{Message, Publish};

use super::dispatch::{self, Dispatched, Reply, Verdict};
use super::{Outputs, Route};
use crate::plugin::{Observed, Pick, Plugin, Role, Shadow};
use crate::policy::{DeadLetter, Permit, RateLimit};
use crate::telemetry::Outcome;
use crate::telemetry::otlp::SpanFacts;
use crate::telemetry::trace::MessageTrace;

/// What became of a failed attempt.
pub(super) enum Failed {
    /// Call the plugin again now (core: the backoff was waited out in process).
    CallAgain,
    /// Settled for now: the server redelivers it later (JetStream nak).
    Later,
    /// Out of attempts or time: dead-letter it with this reason.
    GiveUp(String),
}

/// Why a Done verdict could not be carried out.
pub(super) enum Unsent {
    /// A publish: the attempt failed, like a Retry verdict.
    Publish(String),
    /// The reply: the message is dead-lettered (and the requester told why).
    Reply(String),
}

/// How one kind of route settles a message. Each method settles it for good
/// unless it says otherwise.
pub(super) trait Settle {
    /// Wait for a rate-limit permit; false when the message was turned away.
    async fn permit(&mut self, limit: &RateLimit, msg: &Message) -> bool;
    /// The breaker is open for `wait`: the plugin is not called.
    async fn breaker_open(&mut self, msg: &Message, wait: Duration);
    /// Run the plugin call (a JetStream message is kept alive meanwhile).
    async fn call<F: Future>(&mut self, call: F) -> F::Output;
    /// Send the publishes and the reply, then ack: `Ack`, or `Reply` when a
    /// reply was sent.
    async fn done(&mut self, plugin: &Plugin, msg: &Message, reply: Option<Reply>, publishes: Vec<Publish>) -> Result<Outcome, Unsent>;
    /// The attempt failed; the backoff delay is `delay` when the plugin chose one.
    async fn failed(&mut self, msg: &mut Message, delay: Option<Duration>, reason: String) -> Failed;
    /// The plugin rejected the message (it is dead-lettered next).
    fn rejected(&mut self) {}
    /// After the dead letter was stored (`Ok`) or could not be (`Err`).
    async fn dead_lettered(&mut self, plugin: &Arc<Plugin>, msg: &Message, reason: String, stored: anyhow::Result<()>);
}

/// The span `msg` is handled in (`telemetry::trace`): each back-end begins it
/// as the message arrives and keeps it for its own answers (error replies).
/// Not a `tracing` span: one costs more than a microsecond a message; the
/// lines logged about a message carry its trace id instead (`message_event!`).
pub(super) fn begin_trace(out: &Outputs, msg: &Message) -> MessageTrace {
    let ratio = out.spans.as_ref().map_or(1.0, |spans| spans.sample_ratio());
    MessageTrace::begin(msg, ratio, out.spans.is_some())
}

/// A message a shadow version runs on too, and what the current version did
/// with it on its first call.
struct ShadowRun {
    to: Arc<Shadow>,
    copy: Message,
    observed: Option<Observed>,
}

/// Handle `msg` on `route` in the span `trace`, settling it through `settle`;
/// the span is exported when `[telemetry.otlp]` is set.
pub(super) async fn handle(route: &Route, out: &Outputs, mut msg: Message, trace: &MessageTrace, settle: &mut impl Settle) {
    let _in_flight = route.metrics.in_flight();
    // A shadow runs on a copy of a first delivery once the current version settled it.
    let mut shadow = route.pool.shadow_for(&msg).map(|to| ShadowRun { to, copy: msg.clone(), observed: None });
    let (outcome, plugin) = attempts(route, out, &mut msg, trace, settle, &mut shadow).await;
    if let Some(ShadowRun { to, copy, observed: Some(observed) }) = shadow {
        to.offer(copy, observed);
    }
    if let Some(spans) = &out.spans {
        let plugin = plugin.unwrap_or_else(|| route.pool.plugin());
        let facts = SpanFacts {
            route: &route.name,
            plugin: &plugin.spec.name,
            version: &plugin.hash,
            subject: &msg.subject,
            stream_sequence: msg.delivery.as_ref().map(|d| d.stream_sequence),
            attempt: msg.attempt,
            outcome,
        };
        spans.export(trace, facts);
    }
}

/// The gates, the calls and the settlement; what the message came to last,
/// and the plugin version that handled it (none when a gate turned it away).
async fn attempts(
    route: &Route,
    out: &Outputs,
    msg: &mut Message,
    trace: &MessageTrace,
    settle: &mut impl Settle,
    shadow: &mut Option<ShadowRun>,
) -> (Outcome, Option<Arc<Plugin>>) {
    if let Some(limit) = &route.rate_limit {
        let waiting = Instant::now();
        let permitted = settle.permit(limit, msg).await;
        route.metrics.waited_for_permit(waiting.elapsed());
        if !permitted {
            route.metrics.count(Outcome::Shed);
            return (Outcome::Shed, None);
        }
    }
    let mut pick = Pick::Any { order_by: route.spec.order_by.as_ref() };
    loop {
        if let Some(breaker) = &route.breaker
            && let Permit::Denied(wait) = breaker.try_acquire()
        {
            route.metrics.count(Outcome::BreakerOpen);
            settle.breaker_open(msg, wait).await;
            return (Outcome::BreakerOpen, None);
        }
        let observe = shadow.as_ref().is_some_and(|run| run.observed.is_none());
        let Dispatched { plugin, verdict, role, observed } =
            settle.call(dispatch::run(route, msg, trace, &out.metrics, pick, observe)).await;
        if let Some(run) = shadow.as_mut().filter(|_| observed.is_some()) {
            run.observed = observed;
        }
        let verdict = match verdict {
            // A canary's failure is not the message's: it goes to the current
            // version at once, counting no attempt and tripping no breaker.
            Verdict::Retry { .. } | Verdict::Reject { .. } if role == Role::Canary => {
                pick = Pick::Current;
                continue;
            }
            // A version on probation may be the one at fault: retry the message
            // (on whichever version then serves) rather than dead-letter it.
            Verdict::Reject { reason } if role == Role::Probation => {
                Verdict::Retry { delay: None, reason: format!("rejected by version {} on probation: {reason}", plugin.hash) }
            }
            verdict => verdict,
        };
        if let Some(breaker) = &route.breaker {
            // Reject is the message's fault, not the dependency's.
            breaker.record(!matches!(verdict, Verdict::Retry { .. }));
        }
        let (delay, reason) = match verdict {
            Verdict::Done { mut reply, mut publishes } => {
                // What goes out names this message's span as its parent.
                for publish in &mut publishes {
                    trace.stamp(&mut publish.headers);
                }
                if msg.reply.is_some() {
                    trace.stamp(&mut reply.get_or_insert_with(Reply::empty).headers);
                }
                match settle.done(&plugin, msg, reply, publishes).await {
                    Ok(outcome) => {
                        route.metrics.count(outcome);
                        return (outcome, Some(plugin));
                    }
                    Err(Unsent::Reply(reason)) => {
                        return (dead_letter(route, out, settle, &plugin, msg, Some(trace), reason).await, Some(plugin));
                    }
                    Err(Unsent::Publish(reason)) => (None, reason),
                }
            }
            Verdict::Retry { delay, reason } => (delay, reason),
            Verdict::Reject { reason } => {
                route.metrics.count(Outcome::Reject);
                settle.rejected();
                return (dead_letter(route, out, settle, &plugin, msg, Some(trace), reason).await, Some(plugin));
            }
        };
        match settle.failed(msg, delay, reason).await {
            Failed::CallAgain => route.metrics.count(Outcome::Retry),
            Failed::Later => {
                route.metrics.count(Outcome::Retry);
                return (Outcome::Retry, Some(plugin));
            }
            Failed::GiveUp(reason) => return (dead_letter(route, out, settle, &plugin, msg, Some(trace), reason).await, Some(plugin)),
        }
    }
}

/// Store the dead letter, then let the back-end settle the message by the result.
pub(super) async fn dead_letter(
    route: &Route,
    out: &Outputs,
    settle: &mut impl Settle,
    plugin: &Arc<Plugin>,
    msg: &Message,
    trace: Option<&MessageTrace>,
    reason: String,
) -> Outcome {
    let stored = out.dead_letters.send(DeadLetter { route: &route.name, plugin, message: msg, trace, reason: &reason }).await;
    // Not stored: JetStream keeps the message and tries again; core has lost it.
    let outcome = if stored.is_ok() { Outcome::DeadLetter } else { Outcome::Retry };
    if stored.is_ok() {
        route.metrics.count(Outcome::DeadLetter);
        route.metrics.dead_letters.inc();
    } else {
        route.metrics.dead_letter_failures.inc();
    }
    settle.dead_lettered(plugin, msg, reason, stored).await;
    outcome
}
