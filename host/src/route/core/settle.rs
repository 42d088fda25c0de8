//! Settling a core message: at most once. A failing message is retried in
//! process within the route's bounds (attempts and time), then dead-lettered; a
//! request gets its reply, or an error reply saying why not. A rate limit waits
//! up to `max_wait`, then sheds; an open breaker fails fast.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use switchyard_abi::{Message, Publish};
use tokio_util::sync::CancellationToken;

use super::super::dispatch::{self, Reply};
use super::super::pipeline::{self, Failed, Settle, Unsent};
use super::super::{Outputs, Route, convert};
use super::Subscriptions;
use crate::config::CoreSpec;
use crate::plugin::Plugin;
use crate::policy::RateLimit;
use crate::policy::dead_letter::insert;
use crate::telemetry::Outcome;
use crate::telemetry::trace::MessageTrace;

pub(super) async fn handle(s: &Subscriptions, out: &Outputs, cancel: &CancellationToken, msg: Message) {
    let trace = pipeline::begin_trace(out, &msg);
    let mut settle = Core { route: &s.route, spec: &s.spec, out, cancel, trace: &trace, started: Instant::now(), rejected: false };
    pipeline::handle(&s.route, out, msg, &trace, &mut settle, None).await;
}

/// Handle messages a worker took together, in the order they came: their first
/// calls in one batch call when the pipeline can (`pipeline::call_together`),
/// then each settled as alone.
pub(super) async fn handle_together(s: &Subscriptions, out: &Outputs, cancel: &CancellationToken, msgs: Vec<Message>) {
    let traces: Vec<MessageTrace> = msgs.iter().map(|msg| pipeline::begin_trace(out, msg)).collect();
    let called = pipeline::call_together(&s.route, out, &msgs, &traces).await;
    for ((msg, trace), called) in msgs.into_iter().zip(&traces).zip(called) {
        let mut settle = Core { route: &s.route, spec: &s.spec, out, cancel, trace, started: Instant::now(), rejected: false };
        pipeline::handle(&s.route, out, msg, trace, &mut settle, called).await;
    }
}

struct Core<'a> {
    route: &'a Route,
    trace: &'a MessageTrace,
    spec: &'a CoreSpec,
    out: &'a Outputs,
    cancel: &'a CancellationToken,
    /// The first attempt, for `retry.max_elapsed`.
    started: Instant,
    /// The plugin rejected the message: the requester's fault, answered 400.
    rejected: bool,
}

impl Settle for Core<'_> {
    async fn permit(&mut self, limit: &RateLimit, msg: &Message) -> bool {
        if tokio::time::timeout(limit.max_wait, limit.until_ready(Some(msg))).await.is_ok() {
            return true;
        }
        message_event!(debug, self.route, msg, self.trace, "shed: rate limit");
        error_reply(self.out, msg, self.trace, "rate limited", "429").await;
        false
    }

    async fn breaker_open(&mut self, msg: &Message, _wait: Duration) {
        error_reply(self.out, msg, self.trace, "circuit open", "503").await;
    }

    fn call<F: Future>(&mut self, call: F) -> impl Future<Output = F::Output> {
        call
    }

    async fn done(&mut self, plugin: &Plugin, msg: &Message, reply: Option<Reply>, publishes: Vec<Publish>) -> Result<Outcome, Unsent> {
        done(self.route, self.out, self.trace, plugin, msg, reply, publishes).await
    }

    /// Wait out the delay (the plugin's, else the backoff) and call again, or,
    /// out of attempts or time, give up.
    async fn failed(&mut self, msg: &mut Message, delay: Option<Duration>, reason: String) -> Failed {
        let route = self.route;
        let delay = delay.unwrap_or_else(|| route.backoff.delay_after(msg.attempt));
        let in_budget = self.started.elapsed() + delay <= self.spec.max_elapsed;
        if msg.attempt < self.spec.attempts && in_budget && !self.cancel.is_cancelled() {
            message_event!(debug, route, msg, self.trace, ?delay, "retrying: {reason}");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // Shutting down: stop waiting; the next attempt still runs.
                () = self.cancel.cancelled() => {}
            }
            msg.attempt += 1;
            return Failed::CallAgain;
        }
        Failed::GiveUp(format!("gave up after {} attempt(s) in {:?}: {reason}", msg.attempt, self.started.elapsed()))
    }

    fn rejected(&mut self) {
        self.rejected = true;
    }

    async fn dead_lettered(&mut self, _plugin: &Arc<Plugin>, msg: &Message, reason: String, stored: anyhow::Result<()>) {
        // A request the plugin rejected is the requester's fault (400); one it
        // could not handle is ours (500). A requester told either may count on
        // the dead letter; when it could not be stored the answer is 503, so it
        // (or `dlq replay`) knows to try again.
        let code = match stored {
            Ok(()) if self.rejected => "400",
            Ok(()) => "500",
            Err(err) => {
                message_event!(error, self.route, msg, self.trace, "core message lost: dead letter failed: {err:#}");
                "503"
            }
        };
        error_reply(self.out, msg, self.trace, &reason, code).await;
    }
}

/// Answer a request that will not be handled now rather than let it time out,
/// the NATS services way: an empty body with error headers.
async fn error_reply(out: &Outputs, msg: &Message, trace: &MessageTrace, reason: &str, code: &str) {
    let Some(reply_to) = &msg.reply else { return };
    let mut headers = HeaderMap::new();
    insert(&mut headers, "traceparent", &trace.traceparent());
    insert(&mut headers, "Nats-Service-Error", reason);
    insert(&mut headers, "Nats-Service-Error-Code", code);
    if let Err(err) = out.client.publish_with_headers(reply_to.clone(), headers, Default::default()).await {
        tracing::warn!(subject = %msg.subject, reply = %reply_to, "error reply ({code}) not sent: {err}");
    }
}

/// Send buffered publishes, then the reply (an empty one for an Ack to a request).
/// All are checked against what the server takes first, so a failure sends
/// nothing (a retry then sends nothing twice) and names what failed.
async fn done(
    route: &Route,
    out: &Outputs,
    trace: &MessageTrace,
    plugin: &Plugin,
    msg: &Message,
    reply: Option<Reply>,
    publishes: Vec<Publish>,
) -> Result<Outcome, Unsent> {
    let reply = msg.reply.as_ref().map(|to| (to, reply.unwrap_or_else(Reply::empty)));
    let max_payload = out.client.max_payload();
    if let Some((to, reply)) = &reply
        && let Some(why) = dispatch::unsendable(&reply.headers, reply.payload.len(), max_payload)
    {
        return Err(unsent_reply(route, trace, plugin, msg, to, &why));
    }
    for publish in &publishes {
        if let Some(why) = dispatch::unsendable(&publish.headers, publish.payload.len(), max_payload) {
            return Err(unsent_publish(route, trace, plugin, msg, &publish.subject, &why));
        }
    }
    for publish in publishes {
        if let Err(why) = send(out, publish.subject.clone(), &publish.headers, publish.payload).await {
            return Err(unsent_publish(route, trace, plugin, msg, &publish.subject, &why));
        }
    }
    match reply {
        Some((to, reply)) => {
            send(out, to.clone(), &reply.headers, reply.payload).await.map_err(|why| unsent_reply(route, trace, plugin, msg, to, &why))?;
            Ok(Outcome::Reply)
        }
        None => Ok(Outcome::Ack),
    }
}

fn unsent_publish(route: &Route, trace: &MessageTrace, plugin: &Plugin, msg: &Message, subject: &str, why: &str) -> Unsent {
    route.metrics.publish_failures.inc();
    let reason = format!("route `{}`, plugin `{}`: publish to `{subject}` not sent: {why}", route.name, plugin.spec.name);
    message_event!(warn, route, msg, trace, plugin = %plugin.spec.name, version = %plugin.hash, publish = %subject, "{reason}; retrying the message");
    Unsent::Publish(reason)
}

fn unsent_reply(route: &Route, trace: &MessageTrace, plugin: &Plugin, msg: &Message, to: &str, why: &str) -> Unsent {
    route.metrics.publish_failures.inc();
    message_event!(
        warn, route, msg, trace, plugin = %plugin.spec.name, version = %plugin.hash, reply = %to,
        "reply not sent: {why}; answering with an error and dead-lettering the message"
    );
    Unsent::Reply(format!("reply not sent: {why}"))
}

/// Publish one message; the error names nothing but the failure (callers add
/// route, plugin and subject).
async fn send(out: &Outputs, subject: String, headers: &[switchyard_abi::Header], payload: Vec<u8>) -> Result<(), String> {
    // Without headers, a plain PUB: an empty header block would still make the
    // receiver parse an HPUB.
    if headers.is_empty() {
        return out.client.publish(subject, payload.into()).await.map_err(|e| e.to_string());
    }
    let map = convert::header_map(headers)?;
    out.client.publish_with_headers(subject, map, payload.into()).await.map_err(|e| e.to_string())
}
