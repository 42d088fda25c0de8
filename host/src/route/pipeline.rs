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
use crate::telemetry::otlp::SpanFacts;
use crate::telemetry::trace::MessageTrace;
use crate::telemetry::{InFlight, Outcome};

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
    /// Not an `async fn`: one would hold `call` twice (argument and awaited),
    /// and every message's future moves that size on its way to being polled.
    fn call<F: Future>(&mut self, call: F) -> impl Future<Output = F::Output>;
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

/// The most messages a worker takes together for one batch call.
pub const MAX_TOGETHER: usize = 32;

/// Whether a worker should take more than one message at a time: the plugin
/// handles batches now, and nothing decides message by message before the
/// call (no rate limit, no breaker but a closed one).
pub(super) fn takes_together(route: &Route) -> bool {
    route.rate_limit.is_none() && route.breaker.as_ref().is_none_or(|breaker| breaker.is_closed()) && route.pool.batches()
}

/// A message's first call, made in a batch with others a worker held: the
/// pipeline goes on from its verdict.
pub(super) struct Called<'r> {
    /// Since the message was taken, before the batch call.
    in_flight: InFlight<'r>,
    dispatched: Dispatched,
}

/// The first call of each of `msgs` (each in its span `traces`), made as one
/// batch call (`switchyard_handle_batch`) when nothing decides message by
/// message before a call: no rate limit, a closed breaker (or none), and a
/// pool that can (`Pool::call_batch`). All `None` otherwise (the call failed,
/// or things changed since the messages were taken): each message is then
/// called alone by [`handle`], one after the other.
pub(super) async fn call_together<'r>(
    route: &'r Route,
    out: &Outputs,
    msgs: &[Message],
    traces: &[MessageTrace],
) -> Vec<Option<Called<'r>>> {
    if msgs.len() > 1 && takes_together(route) {
        let in_flight: Vec<_> = msgs.iter().map(|_| route.metrics.in_flight()).collect();
        let msgs: Vec<&Message> = msgs.iter().collect();
        let traces: Vec<&MessageTrace> = traces.iter().collect();
        if let Some(dispatched) = dispatch::run_batch(route, &msgs, &traces, &out.metrics).await {
            return in_flight.into_iter().zip(dispatched).map(|(in_flight, dispatched)| Some(Called { in_flight, dispatched })).collect();
        }
    }
    msgs.iter().map(|_| None).collect()
}

/// Handle `msg` on `route` in the span `trace`, settling it through `settle`,
/// from its first call's verdict when a batch call made it (`called`); the
/// span is exported when `[telemetry.otlp]` is set.
pub(super) async fn handle(
    route: &Route,
    out: &Outputs,
    mut msg: Message,
    trace: &MessageTrace,
    settle: &mut impl Settle,
    called: Option<Called<'_>>,
) {
    let (_in_flight, first) = match called {
        Some(Called { in_flight, dispatched }) => (in_flight, Some(dispatched)),
        None => (route.metrics.in_flight(), None),
    };
    // A shadow runs on a copy of a first delivery once the current version settled it.
    let mut shadow = route.pool.shadow_for(&msg).map(|to| ShadowRun { to, copy: msg.clone(), observed: None });
    let (outcome, plugin) = attempts(route, out, &mut msg, trace, settle, &mut shadow, first).await;
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
/// The rare paths (a gate's wait, a failure, a dead letter) are boxed: their
/// futures would otherwise make every message's future kilobytes larger, and
/// it is moved and copied on the way to being polled.
async fn attempts(
    route: &Route,
    out: &Outputs,
    msg: &mut Message,
    trace: &MessageTrace,
    settle: &mut impl Settle,
    shadow: &mut Option<ShadowRun>,
    mut first: Option<Dispatched>,
) -> (Outcome, Option<Arc<Plugin>>) {
    if let Some(limit) = &route.rate_limit {
        let waiting = Instant::now();
        let permitted = Box::pin(settle.permit(limit, msg)).await;
        route.metrics.waited_for_permit(waiting.elapsed());
        if !permitted {
            route.metrics.count(Outcome::Shed);
            return (Outcome::Shed, None);
        }
    }
    let mut pick = Pick::Any { order_by: route.spec.order_by.as_ref() };
    loop {
        // A batch call made the first call: its gates were passed then.
        let dispatched = match first.take() {
            Some(dispatched) => dispatched,
            None => {
                if let Some(breaker) = &route.breaker
                    && let Permit::Denied(wait) = breaker.try_acquire()
                {
                    route.metrics.count(Outcome::BreakerOpen);
                    Box::pin(settle.breaker_open(msg, wait)).await;
                    return (Outcome::BreakerOpen, None);
                }
                let observe = shadow.as_ref().is_some_and(|run| run.observed.is_none());
                settle.call(dispatch::run(route, msg, trace, &out.metrics, pick, observe)).await
            }
        };
        let Dispatched { plugin, verdict, role, observed } = dispatched;
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
                        return (Box::pin(dead_letter(route, out, settle, &plugin, msg, Some(trace), reason)).await, Some(plugin));
                    }
                    Err(Unsent::Publish(reason)) => (None, reason),
                }
            }
            Verdict::Retry { delay, reason } => (delay, reason),
            Verdict::Reject { reason } => {
                route.metrics.count(Outcome::Reject);
                settle.rejected();
                return (Box::pin(dead_letter(route, out, settle, &plugin, msg, Some(trace), reason)).await, Some(plugin));
            }
        };
        match Box::pin(settle.failed(msg, delay, reason)).await {
            Failed::CallAgain => route.metrics.count(Outcome::Retry),
            Failed::Later => {
                route.metrics.count(Outcome::Retry);
                return (Outcome::Retry, Some(plugin));
            }
            Failed::GiveUp(reason) => {
                return (Box::pin(dead_letter(route, out, settle, &plugin, msg, Some(trace), reason)).await, Some(plugin));
            }
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
