//! The core NATS driver: a subscription (optionally in a queue group) shared by
//! the route's workers. At most once: a failing message is retried in process
//! within the route's bounds, then dead-lettered; a request gets an error reply.

use std::sync::Arc;

use async_nats::{HeaderMap, Subscriber};
use futures::StreamExt;
use switchyard_abi::{Message, Publish};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Reply, Verdict};
use super::{Outputs, Route, convert};
use crate::policy::DeadLetter;
use crate::policy::dead_letter::insert;
use crate::telemetry::Metrics;
use crate::workers::Workers;

struct Feed {
    subscriber: Subscriber,
    draining: bool,
}

pub async fn start(
    route: Arc<Route>,
    out: Outputs,
    cancel: CancellationToken,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    // One subscription per subject; each gets the route's workers.
    for subject in &route.config.subjects {
        let subscriber = match &route.config.queue {
            Some(queue) => out.client.queue_subscribe(subject.clone(), queue.clone()).await?,
            None => out.client.subscribe(subject.clone()).await?,
        };
        let feed = Arc::new(Mutex::new(Feed { subscriber, draining: false }));
        for _ in 0..route.config.concurrency {
            let (route, out, cancel, feed) = (route.clone(), out.clone(), cancel.clone(), feed.clone());
            let name = format!("route `{}` ({subject})", route.name);
            workers.spawn(name, async move { worker(&route, &out, &cancel, &feed).await });
        }
    }
    Ok(())
}

async fn worker(route: &Route, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) {
    loop {
        let next = {
            let mut feed = feed.lock().await;
            if cancel.is_cancelled() && !feed.draining {
                // Stop the server sending, then handle what is already buffered.
                feed.draining = true;
                let _ = feed.subscriber.drain().await;
            }
            if feed.draining {
                feed.subscriber.next().await
            } else {
                tokio::select! {
                    () = cancel.cancelled() => continue,
                    msg = feed.subscriber.next() => msg,
                }
            }
        };
        let Some(msg) = next else { return };
        handle(route, out, cancel, convert::from_core(&msg)).await;
    }
}

async fn handle(route: &Route, out: &Outputs, cancel: &CancellationToken, mut msg: Message) {
    let attempts = u64::from(route.config.retry.attempts.max(1));
    loop {
        let (plugin, verdict) = dispatch::run(route, &msg, &out.metrics).await;
        let reason = match verdict {
            Verdict::Done { reply, publishes } => {
                done(out, &msg, reply, publishes).await;
                return;
            }
            Verdict::Retry { delay, reason } if msg.attempt < attempts && !cancel.is_cancelled() => {
                Metrics::bump(&out.metrics.retried);
                let delay = delay.unwrap_or_else(|| route.backoff.delay_after(msg.attempt));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    // Shutting down: give up waiting and dead-letter below.
                    () = cancel.cancelled() => {}
                }
                tracing::debug!(route = %route.name, attempt = msg.attempt, "retrying: {reason}");
                msg.attempt += 1;
                continue;
            }
            Verdict::Retry { reason, .. } => format!("gave up after {} attempt(s): {reason}", msg.attempt),
            Verdict::Reject { reason } => reason,
        };
        let letter = DeadLetter { route: &route.name, plugin: &plugin, message: &msg, reason: &reason };
        match out.dead_letters.send(letter).await {
            Ok(()) => Metrics::bump(&out.metrics.dead_lettered),
            Err(err) => tracing::error!(route = %route.name, subject = %msg.subject, "core message lost: dead letter failed: {err:#}"),
        }
        if let Some(reply_to) = &msg.reply {
            // Answer the requester now rather than let it time out, the NATS
            // services way: an empty body with error headers.
            let mut headers = HeaderMap::new();
            insert(&mut headers, "Nats-Service-Error", &reason);
            insert(&mut headers, "Nats-Service-Error-Code", "500");
            let _ = out.client.publish_with_headers(reply_to.clone(), headers, Default::default()).await;
        }
        return;
    }
}

/// Send buffered publishes, then the reply (an empty one for an Ack to a request).
async fn done(out: &Outputs, msg: &Message, reply: Option<Reply>, publishes: Vec<Publish>) {
    for publish in publishes {
        send(out, publish.subject, &publish.headers, publish.payload).await;
    }
    match (&msg.reply, reply) {
        (Some(reply_to), reply) => {
            let reply = reply.unwrap_or(Reply { payload: Vec::new(), headers: Vec::new() });
            send(out, reply_to.clone(), &reply.headers, reply.payload).await;
            Metrics::bump(&out.metrics.replied);
        }
        (None, _) => Metrics::bump(&out.metrics.acked),
    }
}

async fn send(out: &Outputs, subject: String, headers: &[switchyard_abi::Header], payload: Vec<u8>) {
    let result = match convert::header_map(headers) {
        Ok(map) => out.client.publish_with_headers(subject.clone(), map, payload.into()).await.map_err(|e| e.to_string()),
        Err(err) => Err(err),
    };
    if let Err(err) = result {
        Metrics::bump(&out.metrics.publish_failures);
        tracing::warn!(%subject, "publish failed: {err}");
    }
}
