//! Settling one JetStream message: the plugin call (kept alive with in-progress
//! acks), then ack after confirmed publishes, nak WITH a delay, or dead letter
//! THEN term — on a work-queue stream term deletes the message, so the copy
//! must exist first.

use std::future::Future;
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
    let msg = convert::from_jetstream(&js_msg, route.config.max_deliver);
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
            match publish_confirmed(out, &msg, publishes).await {
                Ok(()) => {
                    ack(route, &js_msg, AckKind::Ack).await;
                    Metrics::bump(&out.metrics.acked);
                    forget(route, &msg);
                }
                Err(reason) => {
                    Metrics::bump(&out.metrics.publish_failures);
                    retry(route, out, &plugin, &js_msg, &msg, None, format!("publish failed: {reason}")).await;
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
    plugin: &Plugin,
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

async fn dead_letter(route: &Route, out: &Outputs, plugin: &Plugin, js_msg: &JsMessage, msg: &Message, reason: String) {
    let letter = DeadLetter { route: &route.name, plugin, message: msg, reason: &reason };
    match out.dead_letters.send(letter).await {
        Ok(()) => {
            Metrics::bump(&out.metrics.dead_lettered);
            tracing::info!(route = %route.name, subject = %msg.subject, attempt = msg.attempt, "dead-lettered: {reason}");
            ack(route, js_msg, AckKind::Term).await;
            forget(route, msg);
        }
        Err(err) => {
            // Keep the message: the server redelivers it and we try again.
            tracing::error!(route = %route.name, subject = %msg.subject, "dead letter failed, message kept: {err:#}");
            ack(route, js_msg, AckKind::Nak(Some(route.backoff.delay_after(msg.attempt)))).await;
        }
    }
}

/// Publish the handler's buffered messages and wait for every stream ack. Each
/// carries `Nats-Msg-Id = <stream>:<sequence>:<n>` (unless the plugin set one) so
/// a redelivered source message does not publish twice into a stream. A subject no stream captures has no
/// JetStream ack to wait for: it goes out as a core message.
async fn publish_confirmed(out: &Outputs, msg: &Message, publishes: Vec<Publish>) -> Result<(), String> {
    if publishes.is_empty() {
        return Ok(());
    }
    let id_prefix = msg.delivery.as_ref().map(|d| format!("{}:{}", d.stream, d.stream_sequence)).unwrap_or_default();
    let mut pending = Vec::with_capacity(publishes.len());
    for (n, publish) in publishes.into_iter().enumerate() {
        let headers = convert::header_map(&publish.headers)?;
        if !out.streams.captured(&publish.subject).await? {
            out.client
                .publish_with_headers(publish.subject.clone(), headers, publish.payload.into())
                .await
                .map_err(|e| format!("`{}`: {e}", publish.subject))?;
            continue;
        }
        let mut message = PublishMessage::build().payload(publish.payload.into()).headers(headers);
        // A plugin that names its own message id (say, an event id) keeps it.
        if !publish.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("Nats-Msg-Id")) {
            message = message.message_id(format!("{id_prefix}:{n}"));
        }
        let ack = out.js.send_publish(publish.subject.clone(), message).await.map_err(|e| format!("`{}`: {e}", publish.subject))?;
        pending.push((publish.subject, ack));
    }
    for (subject, ack) in pending {
        ack.await.map_err(|e| format!("`{subject}`: {e}"))?;
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
    }
}
