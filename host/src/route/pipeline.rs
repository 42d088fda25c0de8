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

use super::dispatch::{self, Reply, Verdict};
use super::{Outputs, Route};
use crate::plugin::Plugin;
use crate::policy::{DeadLetter, Permit, RateLimit};
use crate::telemetry::Outcome;

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
    /// Send the publishes and the reply, then ack.
    async fn done(&mut self, plugin: &Plugin, msg: &Message, reply: Option<Reply>, publishes: Vec<Publish>) -> Result<(), Unsent>;
    /// The attempt failed; the backoff delay is `delay` when the plugin chose one.
    async fn failed(&mut self, msg: &mut Message, delay: Option<Duration>, reason: String) -> Failed;
    /// After the dead letter was stored (`Ok`) or could not be (`Err`).
    async fn dead_lettered(&mut self, plugin: &Arc<Plugin>, msg: &Message, reason: String, stored: anyhow::Result<()>);
}

/// Handle `msg` on `route`, settling it through `settle`.
pub(super) async fn handle(route: &Route, out: &Outputs, mut msg: Message, settle: &mut impl Settle) {
    let _in_flight = route.metrics.in_flight();
    if let Some(limit) = &route.rate_limit {
        let waiting = Instant::now();
        let permitted = settle.permit(limit, &msg).await;
        route.metrics.waited_for_permit(waiting.elapsed());
        if !permitted {
            return route.metrics.count(Outcome::Shed);
        }
    }
    loop {
        if let Some(breaker) = &route.breaker
            && let Permit::Denied(wait) = breaker.try_acquire()
        {
            route.metrics.count(Outcome::BreakerOpen);
            return settle.breaker_open(&msg, wait).await;
        }
        let (plugin, verdict, on_probation) = settle.call(dispatch::run(route, &msg, &out.metrics)).await;
        let verdict = match verdict {
            // A version on probation may be the one at fault: retry the message
            // (on whichever version then serves) rather than dead-letter it.
            Verdict::Reject { reason } if on_probation => {
                Verdict::Retry { delay: None, reason: format!("rejected by version {} on probation: {reason}", plugin.hash) }
            }
            verdict => verdict,
        };
        if let Some(breaker) = &route.breaker {
            // Reject is the message's fault, not the dependency's.
            breaker.record(!matches!(verdict, Verdict::Retry { .. }));
        }
        let (delay, reason) = match verdict {
            Verdict::Done { reply, publishes } => match settle.done(&plugin, &msg, reply, publishes).await {
                Ok(()) => return,
                Err(Unsent::Reply(reason)) => return dead_letter(route, out, settle, &plugin, &msg, reason).await,
                Err(Unsent::Publish(reason)) => (None, reason),
            },
            Verdict::Retry { delay, reason } => (delay, reason),
            Verdict::Reject { reason } => {
                route.metrics.count(Outcome::Reject);
                return dead_letter(route, out, settle, &plugin, &msg, reason).await;
            }
        };
        match settle.failed(&mut msg, delay, reason).await {
            Failed::CallAgain => route.metrics.count(Outcome::Retry),
            Failed::Later => return route.metrics.count(Outcome::Retry),
            Failed::GiveUp(reason) => return dead_letter(route, out, settle, &plugin, &msg, reason).await,
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
    reason: String,
) {
    let stored = out.dead_letters.send(DeadLetter { route: &route.name, plugin, message: msg, reason: &reason }).await;
    if stored.is_ok() {
        route.metrics.count(Outcome::DeadLetter);
        route.metrics.dead_letters.inc();
    } else {
        route.metrics.dead_letter_failures.inc();
    }
    settle.dead_lettered(plugin, msg, reason, stored).await;
}
