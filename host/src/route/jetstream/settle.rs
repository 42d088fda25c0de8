//! Settling one JetStream message: the plugin call (kept alive with in-progress
//! acks), then ack after confirmed publishes, nak WITH a delay, or dead letter
//! THEN term — on a work-queue stream term deletes the message, so the copy
//! must exist first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Message as JsMessage};
use switchyard_abi::{Message, Publish};

use super::super::dispatch::{self, Verdict};
use super::super::{Outputs, Route, convert};
use crate::plugin::Plugin;
use crate::policy::{DeadLetter, Permit};
use crate::telemetry::Metrics;

pub async fn handle(route: &Route, out: &Outputs, js_msg: JsMessage) {
    if !route.held.release(&js_msg, route.config.ack_wait) {
        tracing::warn!(route = %route.name, "a message held past its ack_wait (was the host paused?) is left to its redelivery");
        return;
    }
    let msg = convert::from_jetstream(&js_msg, route.config.max_deliver);
    if let Some((plugin, reason)) = msg.delivery.as_ref().and_then(|d| route.owed.get(d.stream_sequence)) {
        // Failed for good before; only its dead letter is missing.
        return dead_letter(route, out, &plugin, &js_msg, &msg, reason).await;
    }
    if let Some(breaker) = &route.breaker
        && let Permit::Denied(wait) = breaker.try_acquire()
    {
        Metrics::bump(&out.metrics.breaker_rejected);
        count_breaker_nak(route, &js_msg);
        ack(route, &js_msg, AckKind::Nak(Some(wait))).await;
        return;
    }
    if let Some(limit) = route.rate_limit.as_ref().filter(|l| l.is_keyed()) {
        keep_alive(route, &js_msg, limit.until_ready(Some(&msg))).await;
    }
    let (plugin, verdict) = keep_alive(route, &js_msg, dispatch::run(route, &msg, &out.metrics)).await;
    if let Some(breaker) = &route.breaker {
        breaker.record(!matches!(verdict, Verdict::Retry { .. }));
    }
    match verdict {
        Verdict::Done { publishes, reply } => {
            if reply.is_some_and(|r| !r.payload.is_empty()) {
                tracing::debug!(route = %route.name, "reply to a JetStream message dropped: it has no requester");
            }
            match publish_confirmed(out, publishes).await {
                Ok(()) => {
                    ack(route, &js_msg, AckKind::Ack).await;
                    Metrics::bump(&out.metrics.acked);
                    forget(route, &msg);
                }
                Err(why) => {
                    Metrics::bump(&out.metrics.publish_failures);
                    let reason = format!("route `{}`, plugin `{}`: {why}", route.name, plugin.spec.name);
                    tracing::warn!(
                        route = %route.name, plugin = %plugin.spec.name, subject = %msg.subject,
                        "{reason}; retrying the message"
                    );
                    retry(route, out, &plugin, &js_msg, &msg, None, reason).await;
                }
            }
        }
        Verdict::Retry { delay, reason } => retry(route, out, &plugin, &js_msg, &msg, delay, reason).await,
        Verdict::Reject { reason } => dead_letter(route, out, &plugin, &js_msg, &msg, reason).await,
    }
}

/// Run `work` while telling the server, every third of `ack_wait`, that the
/// message is still being handled — so a long call is never redelivered.
async fn keep_alive<F: Future>(route: &Route, js_msg: &JsMessage, work: F) -> F::Output {
    let period = (route.config.ack_wait / 3).max(Duration::from_millis(50));
    let pulse = async {
        loop {
            tokio::time::sleep(period).await;
            if let Err(err) = js_msg.ack_with(AckKind::Progress).await {
                tracing::debug!(route = %route.name, "in-progress ack failed: {err}");
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

/// Nak with a delay, or dead-letter once `max_deliver` attempts have failed.
/// Deliveries spent by breaker naks do not count as attempts.
async fn retry(
    route: &Route,
    out: &Outputs,
    plugin: &Arc<Plugin>,
    js_msg: &JsMessage,
    msg: &Message,
    delay: Option<Duration>,
    reason: String,
) {
    let max = route.config.max_deliver;
    let failed_attempts = msg.attempt.saturating_sub(breaker_naks(route, msg));
    if max > 0 && failed_attempts >= max as u64 {
        let reason = format!("max_deliver ({max}) reached: {reason}");
        return dead_letter(route, out, plugin, js_msg, msg, reason).await;
    }
    Metrics::bump(&out.metrics.retried);
    let delay = delay.unwrap_or_else(|| route.backoff.delay_after(failed_attempts));
    tracing::debug!(route = %route.name, attempt = msg.attempt, ?delay, "nak: {reason}");
    ack(route, js_msg, AckKind::Nak(Some(delay))).await;
}

async fn dead_letter(route: &Route, out: &Outputs, plugin: &Arc<Plugin>, js_msg: &JsMessage, msg: &Message, reason: String) {
    let letter = DeadLetter { route: &route.name, plugin, message: msg, reason: &reason };
    match out.dead_letters.send(letter).await {
        Ok(()) => {
            Metrics::bump(&out.metrics.dead_lettered);
            tracing::info!(route = %route.name, subject = %msg.subject, attempt = msg.attempt, "dead-lettered: {reason}");
            ack(route, js_msg, AckKind::Term).await;
            forget(route, msg);
        }
        Err(err) => {
            // Never give the message up: nak it (the server's max_deliver is
            // unlimited) and write the dead letter when it comes back.
            Metrics::bump(&out.metrics.dead_letter_failures);
            let delay = route.backoff.delay_after(msg.attempt);
            tracing::error!(
                route = %route.name, subject = %msg.subject, attempt = msg.attempt,
                "cannot store the dead letter ({err:#}); message kept, retrying in {delay:?}: {reason}"
            );
            if let Some(delivery) = &msg.delivery {
                route.owed.owe(delivery.stream_sequence, plugin.clone(), reason);
            }
            ack(route, js_msg, AckKind::Nak(Some(delay))).await;
        }
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

pub async fn ack(route: &Route, js_msg: &JsMessage, kind: AckKind) {
    let result = if route.config.double_ack { js_msg.double_ack_with(kind).await } else { js_msg.ack_with(kind).await };
    if let Err(err) = result {
        tracing::warn!(route = %route.name, "ack failed (the server will redeliver): {err}");
    }
}

/// Remember that this delivery of `js_msg` was spent by the breaker, not by a failure.
pub fn count_breaker_nak(route: &Route, js_msg: &JsMessage) {
    if let Ok(info) = js_msg.info() {
        route.breaker_naks.bump(info.stream_sequence);
    }
}

fn breaker_naks(route: &Route, msg: &Message) -> u64 {
    msg.delivery.as_ref().map_or(0, |d| route.breaker_naks.get(d.stream_sequence))
}

fn forget(route: &Route, msg: &Message) {
    if let Some(delivery) = &msg.delivery {
        route.breaker_naks.remove(delivery.stream_sequence);
        route.owed.paid(delivery.stream_sequence);
    }
}
