//! Settling a JetStream message: at least once. The plugin call is kept alive
//! with in-progress acks; then ack after confirmed publishes, nak WITH a delay,
//! or dead letter THEN term — on a work-queue stream term deletes the message,
//! so the copy must exist first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Message as JsMessage};
use switchyard_abi::{Message, Publish};

use super::super::dispatch::{self, Reply};
use super::super::pipeline::{self, Failed, Settle, Unsent};
use super::super::{Outputs, convert};
use super::Consumer;
use super::breaker;
use crate::plugin::Plugin;
use crate::policy::RateLimit;
use crate::telemetry::Outcome;
use crate::telemetry::trace::MessageTrace;

pub(super) async fn handle(c: &Consumer, out: &Outputs, js_msg: JsMessage) {
    if !c.held.release(&js_msg) {
        tracing::warn!(route = %c.route.name, "a message held past its ack_wait (was the host paused?) is left to its redelivery");
        return;
    }
    let msg = convert::from_jetstream(&js_msg, c.spec.max_deliver);
    let trace = pipeline::begin_trace(out, &msg);
    let mut settle = JetStream { c, out, js_msg: &js_msg, trace: &trace };
    match msg.delivery.as_ref().and_then(|d| c.owed.get(d.stream_sequence)) {
        // Failed for good before; only its dead letter is missing.
        Some((plugin, reason)) => {
            pipeline::dead_letter(&c.route, out, &mut settle, &plugin, &msg, Some(&trace), reason).await;
        }
        None => pipeline::handle(&c.route, out, msg, &trace, &mut settle, None).await,
    }
}

struct JetStream<'a> {
    c: &'a Consumer,
    out: &'a Outputs,
    js_msg: &'a JsMessage,
    trace: &'a MessageTrace,
}

impl Settle for JetStream<'_> {
    /// A keyed limit is waited for here, kept alive; an unkeyed one was waited
    /// for before the message was pulled.
    async fn permit(&mut self, limit: &RateLimit, msg: &Message) -> bool {
        if limit.is_keyed() {
            keep_alive(self.c, self.js_msg, limit.until_ready(Some(msg))).await;
        }
        true
    }

    /// Nak with the breaker's delay; the delivery is not counted as an attempt.
    async fn breaker_open(&mut self, _msg: &Message, wait: Duration) {
        breaker::spent(self.c, self.js_msg);
        ack(self.c, self.out, self.js_msg, AckKind::Nak(Some(wait))).await;
    }

    fn call<F: Future>(&mut self, call: F) -> impl Future<Output = F::Output> {
        keep_alive(self.c, self.js_msg, call)
    }

    async fn done(&mut self, plugin: &Plugin, msg: &Message, reply: Option<Reply>, publishes: Vec<Publish>) -> Result<Outcome, Unsent> {
        let c = self.c;
        if reply.is_some_and(|r| !r.payload.is_empty()) {
            tracing::debug!(route = %c.route.name, "reply to a JetStream message dropped: it has no requester");
        }
        match publish_confirmed(self.out, publishes).await {
            Ok(()) => {
                ack(c, self.out, self.js_msg, AckKind::Ack).await;
                forget(c, msg);
                Ok(Outcome::Ack)
            }
            Err(why) => {
                c.route.metrics.publish_failures.inc();
                let reason = format!("route `{}`, plugin `{}`: {why}", c.route.name, plugin.spec.name);
                message_event!(warn, c.route, msg, self.trace, plugin = %plugin.spec.name, version = %plugin.hash, "{reason}; retrying the message");
                Err(Unsent::Publish(reason))
            }
        }
    }

    /// Nak with a delay, or give up once `max_deliver` attempts have failed.
    /// Deliveries spent by breaker naks do not count as attempts.
    async fn failed(&mut self, msg: &mut Message, delay: Option<Duration>, reason: String) -> Failed {
        let c = self.c;
        let max = c.spec.max_deliver;
        let failed_attempts = breaker::failed_attempts(c, msg);
        if max > 0 && failed_attempts >= max as u64 {
            return Failed::GiveUp(format!("max_deliver ({max}) reached: {reason}"));
        }
        let delay = delay.unwrap_or_else(|| c.route.backoff.delay_after(failed_attempts));
        message_event!(debug, c.route, msg, self.trace, ?delay, "nak: {reason}");
        ack(c, self.out, self.js_msg, AckKind::Nak(Some(delay))).await;
        Failed::Later
    }

    /// Stored: term (on a work-queue stream that deletes the message, so the
    /// copy had to exist first). Not stored: never give the message up — nak it
    /// (the server's max_deliver is unlimited) and owe its dead letter.
    async fn dead_lettered(&mut self, plugin: &Arc<Plugin>, msg: &Message, reason: String, stored: anyhow::Result<()>) {
        let c = self.c;
        match stored {
            Ok(()) => {
                message_event!(info, c.route, msg, self.trace, plugin = %plugin.spec.name, version = %plugin.hash, "dead-lettered: {reason}");
                ack(c, self.out, self.js_msg, AckKind::Term).await;
                forget(c, msg);
            }
            Err(err) => {
                let delay = c.route.backoff.delay_after(msg.attempt);
                message_event!(
                    error, c.route, msg, self.trace, plugin = %plugin.spec.name, version = %plugin.hash,
                    "cannot store the dead letter ({err:#}); message kept, retrying in {delay:?}: {reason}"
                );
                if let Some(delivery) = &msg.delivery {
                    c.owed.owe(delivery.stream_sequence, plugin.clone(), reason);
                }
                ack(c, self.out, self.js_msg, AckKind::Nak(Some(delay))).await;
            }
        }
    }
}

/// Run `work` while telling the server, every third of `ack_wait`, that the
/// message is still being handled — so a long call is never redelivered.
async fn keep_alive<F: Future>(c: &Consumer, js_msg: &JsMessage, work: F) -> F::Output {
    let period = (c.spec.ack_wait / 3).max(Duration::from_millis(50));
    let pulse = async {
        loop {
            tokio::time::sleep(period).await;
            if let Err(err) = js_msg.ack_with(AckKind::Progress).await {
                tracing::debug!(route = %c.route.name, "in-progress ack failed: {err}");
            }
        }
    };
    tokio::pin!(work);
    tokio::select! {
        // Work first: a call that finishes in its first poll never arms the timer.
        biased;
        output = &mut work => output,
        () = pulse => work.await,
    }
}

/// Publish the handler's buffered messages and wait for every stream ack. Each
/// carries the `Nats-Msg-Id = <stream>:<sequence>:<n>` the host gave it when the
/// plugin made it (unless the plugin set one), so a redelivered source message
/// does not publish twice into a stream. A subject no stream captures has no
/// JetStream ack to wait for: it goes out as a core message, id and all. All are
/// checked before any is sent; the error names the subject that failed.
async fn publish_confirmed(out: &Outputs, publishes: Vec<Publish>) -> Result<(), String> {
    let max_payload = out.client.max_payload();
    for publish in &publishes {
        if let Some(why) = dispatch::unsendable(&publish.headers, publish.payload.len(), max_payload) {
            return Err(format!("publish to `{}` not sent: {why}", publish.subject));
        }
    }
    let mut pending = Vec::with_capacity(publishes.len());
    for publish in publishes {
        let subject = publish.subject;
        let failed = |e: &dyn std::fmt::Display| format!("publish to `{subject}` not sent: {e}");
        let headers = convert::header_map(&publish.headers).map_err(|e| failed(&e))?;
        if !out.streams.captured(&subject).await.map_err(|e| failed(&e))? {
            out.client.publish_with_headers(subject.clone(), headers, publish.payload.into()).await.map_err(|e| failed(&e))?;
            continue;
        }
        let message = PublishMessage::build().payload(publish.payload.into()).headers(headers);
        let ack = out.js.send_publish(subject.clone(), message).await.map_err(|e| failed(&e))?;
        pending.push((subject, ack));
    }
    for (subject, ack) in pending {
        ack.await.map_err(|e| format!("publish to `{subject}` not confirmed: {e}"))?;
    }
    Ok(())
}

/// Settle `js_msg` with `kind`: queued to go out with other acks
/// (`broker::Acks`), or, with `double_ack`, sent and confirmed by the server.
pub(super) async fn ack(c: &Consumer, out: &Outputs, js_msg: &JsMessage, kind: AckKind) {
    let result = if c.spec.double_ack {
        js_msg.double_ack_with(kind).await.map_err(|err| err.to_string())
    } else if let Some(reply) = &js_msg.reply {
        out.acks.send(reply.clone(), kind).await
    } else {
        Err("not a JetStream message: it has no reply subject".to_owned())
    };
    if let Err(err) = result {
        tracing::warn!(route = %c.route.name, "ack failed (the server will redeliver): {err}");
    }
}

fn forget(c: &Consumer, msg: &Message) {
    if let Some(delivery) = &msg.delivery {
        c.breaker_naks.remove(delivery.stream_sequence);
        c.owed.paid(delivery.stream_sequence);
    }
}
