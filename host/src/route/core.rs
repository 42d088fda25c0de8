//! The core NATS driver: a subscription (optionally in a queue group) per subject.
//! At most once: a failing message is retried in process within the route's
//! bounds (attempts and time), then dead-lettered; a request gets an error reply.
//! A rate limit waits up to `max_wait`, then sheds; an open breaker fails fast.
//!
//! Unordered routes run `concurrency` workers, each with its own subscription in
//! one queue group; routes with `order_by` read one subscription in one task and
//! hand messages to ordering lanes.

use std::sync::Arc;
use std::time::Instant;

use async_nats::{HeaderMap, Subscriber};
use futures::StreamExt;
use switchyard_abi::{Message, Publish};
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Reply, Verdict};
use super::lanes::Lanes;
use super::{Outputs, Route, convert};
use crate::policy::dead_letter::insert;
use crate::policy::{DeadLetter, Permit};
use crate::telemetry::Metrics;
use crate::workers::Workers;

/// A subscription that stops cleanly: on cancel it is drained (the server stops
/// sending, what is buffered is still handed out), then it ends.
struct Feed {
    subscriber: Subscriber,
    draining: bool,
}

impl Feed {
    async fn subscribe(out: &Outputs, subject: &str, queue: Option<&str>) -> anyhow::Result<Self> {
        let subscriber = match queue {
            Some(queue) => out.client.queue_subscribe(subject.to_owned(), queue.to_owned()).await?,
            None => out.client.subscribe(subject.to_owned()).await?,
        };
        Ok(Self { subscriber, draining: false })
    }

    async fn next(&mut self, cancel: &CancellationToken) -> Option<async_nats::Message> {
        loop {
            if cancel.is_cancelled() && !self.draining {
                self.draining = true;
                let _ = self.subscriber.drain().await;
            }
            if self.draining {
                return self.subscriber.next().await;
            }
            tokio::select! {
                () = cancel.cancelled() => continue,
                msg = self.subscriber.next() => return msg,
            }
        }
    }
}

pub async fn start(route: Arc<Route>, out: Outputs, cancel: CancellationToken, workers: &mut Workers) -> anyhow::Result<()> {
    let concurrency = route.config.concurrency.max(1);
    // Unordered workers each own a subscription in one queue group, so the server
    // hands each message to one of them: no lock, no hand-off between workers.
    // Without a configured group the group is this route's own on this host, so
    // every other subscriber (another host included) still gets its copy.
    let queue = match &route.config.queue {
        Some(queue) => Some(queue.clone()),
        None if route.config.order_by.is_none() && concurrency > 1 => Some(private_queue(&route.name, &out.client)),
        None => None,
    };
    for subject in &route.config.subjects {
        let name = format!("route `{}` ({subject})", route.name);
        match route.config.order_by.clone() {
            Some(order_by) => {
                let mut feed = Feed::subscribe(&out, subject, queue.as_deref()).await?;
                let (r, o, c) = (route.clone(), out.clone(), cancel.clone());
                let lanes = Lanes::start(concurrency, &name, workers, move |msg: Message| {
                    let (route, out, cancel) = (r.clone(), o.clone(), c.clone());
                    async move { handle(&route, &out, &cancel, msg).await }
                });
                let cancel = cancel.clone();
                workers.spawn(format!("{name} reader"), async move {
                    while let Some(msg) = feed.next(&cancel).await {
                        let msg = convert::from_core(&msg);
                        let key = order_by.extract(&msg).map(str::to_owned);
                        lanes.send(key.as_deref(), msg).await;
                    }
                });
            }
            None => {
                for _ in 0..concurrency {
                    let mut feed = Feed::subscribe(&out, subject, queue.as_deref()).await?;
                    let (route, out, cancel) = (route.clone(), out.clone(), cancel.clone());
                    workers.spawn(name.clone(), async move {
                        while let Some(msg) = feed.next(&cancel).await {
                            handle(&route, &out, &cancel, convert::from_core(&msg)).await;
                        }
                    });
                }
            }
        }
    }
    Ok(())
}

/// A queue group no other subscriber shares: the route's name and a unique token.
fn private_queue(route: &str, client: &async_nats::Client) -> String {
    let inbox = client.new_inbox();
    let token = inbox.rsplit('.').next().unwrap_or(&inbox);
    format!("_switchyard_{route}_{token}")
}

async fn handle(route: &Route, out: &Outputs, cancel: &CancellationToken, mut msg: Message) {
    if let Some(limit) = &route.rate_limit
        && tokio::time::timeout(limit.max_wait, limit.until_ready(Some(&msg))).await.is_err()
    {
        Metrics::bump(&out.metrics.shed);
        tracing::debug!(route = %route.name, subject = %msg.subject, "shed: rate limit");
        error_reply(out, &msg, "rate limited", "429").await;
        return;
    }
    let attempts = u64::from(route.config.retry.attempts.max(1));
    let started = Instant::now();
    loop {
        if let Some(breaker) = &route.breaker
            && let Permit::Denied(_) = breaker.try_acquire()
        {
            Metrics::bump(&out.metrics.breaker_rejected);
            error_reply(out, &msg, "circuit open", "503").await;
            return;
        }
        let (plugin, verdict) = dispatch::run(route, &msg, &out.metrics).await;
        if let Some(breaker) = &route.breaker {
            breaker.record(!matches!(verdict, Verdict::Retry { .. }));
        }
        let reason = match verdict {
            Verdict::Done { reply, publishes } => {
                done(out, &msg, reply, publishes).await;
                return;
            }
            Verdict::Retry { delay, reason } => {
                let delay = delay.unwrap_or_else(|| route.backoff.delay_after(msg.attempt));
                let in_budget = started.elapsed() + delay <= route.config.retry.max_elapsed;
                if msg.attempt < attempts && in_budget && !cancel.is_cancelled() {
                    Metrics::bump(&out.metrics.retried);
                    tracing::debug!(route = %route.name, attempt = msg.attempt, ?delay, "retrying: {reason}");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // Shutting down: stop waiting; the next attempt still runs.
                        () = cancel.cancelled() => {}
                    }
                    msg.attempt += 1;
                    continue;
                }
                format!("gave up after {} attempt(s) in {:?}: {reason}", msg.attempt, started.elapsed())
            }
            Verdict::Reject { reason } => reason,
        };
        let letter = DeadLetter { route: &route.name, plugin: &plugin, message: &msg, reason: &reason };
        match out.dead_letters.send(letter).await {
            Ok(()) => Metrics::bump(&out.metrics.dead_lettered),
            Err(err) => tracing::error!(route = %route.name, subject = %msg.subject, "core message lost: dead letter failed: {err:#}"),
        }
        error_reply(out, &msg, &reason, "500").await;
        return;
    }
}

/// Answer a request that will not be handled now rather than let it time out,
/// the NATS services way: an empty body with error headers.
async fn error_reply(out: &Outputs, msg: &Message, reason: &str, code: &str) {
    let Some(reply_to) = &msg.reply else { return };
    let mut headers = HeaderMap::new();
    insert(&mut headers, "Nats-Service-Error", reason);
    insert(&mut headers, "Nats-Service-Error-Code", code);
    let _ = out.client.publish_with_headers(reply_to.clone(), headers, Default::default()).await;
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
    // Without headers, a plain PUB: an empty header block would still make the
    // receiver parse an HPUB.
    let result = if headers.is_empty() {
        out.client.publish(subject.clone(), payload.into()).await.map_err(|e| e.to_string())
    } else {
        match convert::header_map(headers) {
            Ok(map) => out.client.publish_with_headers(subject.clone(), map, payload.into()).await.map_err(|e| e.to_string()),
            Err(err) => Err(err),
        }
    };
    if let Err(err) = result {
        Metrics::bump(&out.metrics.publish_failures);
        tracing::warn!(%subject, "publish failed: {err}");
    }
}
