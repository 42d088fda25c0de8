//! The JetStream driver: a durable pull consumer shared by the route's workers.
//! At least once: ack only after the buffered publishes are confirmed; a failure
//! is nak'd WITH a delay from the route's backoff; a rejected or exhausted
//! message is copied to the dead-letter stream, and only then termed.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Message as JsMessage};
use futures::StreamExt;
use switchyard_abi::{Message, Publish};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Verdict};
use super::{Outputs, Route, convert};
use crate::plugin::Plugin;
use crate::policy::DeadLetter;
use crate::telemetry::Metrics;
use crate::workers::Workers;

/// Pause before re-opening a consumer whose message stream failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);

struct Feed {
    messages: Option<pull::Stream>,
}

pub async fn start(
    route: Arc<Route>,
    out: Outputs,
    cancel: CancellationToken,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    // Bind once now so a bad stream or consumer config fails startup loudly.
    let messages = open(&route, &out).await?;
    let feed = Arc::new(Mutex::new(Feed { messages: Some(messages) }));
    for _ in 0..route.config.concurrency {
        let (route, out, cancel, feed) = (route.clone(), out.clone(), cancel.clone(), feed.clone());
        let name = format!("route `{}`", route.name);
        workers.spawn(name, async move { worker(&route, &out, &cancel, &feed).await });
    }
    Ok(())
}

/// Create or update the durable consumer and start pulling from it.
async fn open(route: &Route, out: &Outputs) -> anyhow::Result<pull::Stream> {
    let cfg = &route.config;
    let stream_name = cfg.stream.as_ref().map(|s| s.get_ref().as_str()).unwrap_or_default();
    let stream = out.js.get_stream(stream_name).await.map_err(|e| anyhow::anyhow!("stream `{stream_name}`: {e}"))?;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(cfg.durable_name().to_owned()),
            filter_subjects: cfg.subjects.clone(),
            max_deliver: cfg.max_deliver,
            ack_wait: cfg.ack_wait,
            max_ack_pending: cfg.max_ack_pending,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("consumer `{}` on stream `{stream_name}`: {e}", cfg.durable_name()))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(cfg.batch)
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pulling from consumer `{}`: {e}", cfg.durable_name()))?;
    Ok(messages)
}

async fn worker(route: &Route, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) {
    loop {
        let next = {
            let mut feed = feed.lock().await;
            if feed.messages.is_none() {
                match open(route, out).await {
                    Ok(messages) => {
                        tracing::info!(route = %route.name, "consumer re-opened");
                        feed.messages = Some(messages);
                    }
                    Err(err) => {
                        tracing::warn!(route = %route.name, "cannot re-open consumer: {err:#}");
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(REOPEN_DELAY) => continue,
                        }
                    }
                }
            }
            let Some(messages) = feed.messages.as_mut() else { continue };
            tokio::select! {
                // Stop pulling; what this host buffered but did not start is
                // redelivered by the server after ack_wait.
                () = cancel.cancelled() => return,
                next = messages.next() => match next {
                    Some(Ok(msg)) => msg,
                    Some(Err(err)) => {
                        use async_nats::jetstream::consumer::pull::MessagesErrorKind as Kind;
                        match err.kind() {
                            // Heartbeats lost to a slow moment or a reconnect: not fatal.
                            Kind::MissingHeartbeat => tracing::debug!(route = %route.name, "missing heartbeat"),
                            _ => {
                                tracing::warn!(route = %route.name, "consumer stream error: {err}; re-opening");
                                feed.messages = None;
                            }
                        }
                        continue;
                    }
                    None => {
                        feed.messages = None;
                        continue;
                    }
                },
            }
        };
        handle(route, out, next).await;
    }
}

async fn handle(route: &Route, out: &Outputs, js_msg: JsMessage) {
    let msg = convert::from_jetstream(&js_msg, route.config.max_deliver);
    let (plugin, verdict) = dispatch::run(route, &msg, &out.metrics).await;
    match verdict {
        Verdict::Done { publishes, reply } => {
            if reply.is_some_and(|r| !r.payload.is_empty()) {
                tracing::debug!(route = %route.name, "reply to a JetStream message dropped: it has no requester");
            }
            match publish_confirmed(out, &msg, publishes).await {
                Ok(()) => {
                    ack(route, &js_msg, AckKind::Ack).await;
                    Metrics::bump(&out.metrics.acked);
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

/// Nak with a delay, or dead-letter once the last allowed delivery has failed.
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
    if max > 0 && msg.attempt >= max as u64 {
        let reason = format!("max_deliver ({max}) reached: {reason}");
        return dead_letter(route, out, plugin, js_msg, msg, reason).await;
    }
    Metrics::bump(&out.metrics.retried);
    let delay = delay.unwrap_or_else(|| route.backoff.delay_after(msg.attempt));
    tracing::debug!(route = %route.name, attempt = msg.attempt, ?delay, "nak: {reason}");
    ack(route, js_msg, AckKind::Nak(Some(delay))).await;
}

/// Copy to the dead-letter stream, wait for its ack, THEN term: on a work-queue
/// stream term deletes the message, so the copy must exist first.
async fn dead_letter(route: &Route, out: &Outputs, plugin: &Plugin, js_msg: &JsMessage, msg: &Message, reason: String) {
    let letter = DeadLetter { route: &route.name, plugin, message: msg, reason: &reason };
    match out.dead_letters.send(letter).await {
        Ok(()) => {
            Metrics::bump(&out.metrics.dead_lettered);
            tracing::info!(route = %route.name, subject = %msg.subject, attempt = msg.attempt, "dead-lettered: {reason}");
            ack(route, js_msg, AckKind::Term).await;
        }
        Err(err) => {
            // Keep the message: the server redelivers it and we try again.
            tracing::error!(route = %route.name, subject = %msg.subject, "dead letter failed, message kept: {err:#}");
            ack(route, js_msg, AckKind::Nak(Some(route.backoff.delay_after(msg.attempt)))).await;
        }
    }
}

/// Publish the handler's buffered messages and wait for every stream ack. Each
/// carries `Nats-Msg-Id = <stream>:<sequence>:<n>` so a redelivered source message
/// does not publish twice into a stream. A subject no stream captures has no
/// JetStream ack to wait for: it goes out as a core message.
async fn publish_confirmed(out: &Outputs, msg: &Message, publishes: Vec<Publish>) -> Result<(), String> {
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
        let message = PublishMessage::build().payload(publish.payload.into()).headers(headers).message_id(format!("{id_prefix}:{n}"));
        let ack = out.js.send_publish(publish.subject.clone(), message).await.map_err(|e| format!("`{}`: {e}", publish.subject))?;
        pending.push((publish.subject, ack));
    }
    for (subject, ack) in pending {
        ack.await.map_err(|e| format!("`{subject}`: {e}"))?;
    }
    Ok(())
}

async fn ack(route: &Route, js_msg: &JsMessage, kind: AckKind) {
    let result = if route.config.double_ack { js_msg.double_ack_with(kind).await } else { js_msg.ack_with(kind).await };
    if let Err(err) = result {
        tracing::warn!(route = %route.name, "ack failed (the server will redeliver): {err}");
    }
}
