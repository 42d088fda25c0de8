//! The core NATS driver: a subscription (optionally in a queue group) per subject.
//! At most once: a failing message is retried in process within the route's
//! bounds (attempts and time), then dead-lettered; a request gets an error reply.
//! A rate limit waits up to `max_wait`, then sheds; an open breaker fails fast.
//!
//! Unordered routes run `concurrency` workers, each with its own subscription in
//! one queue group; routes with `order_by` read one subscription in one task and
//! hand messages to ordering lanes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, Subscriber};
use futures::StreamExt;
use switchyard_abi::{Message, Publish};
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Reply, Verdict};
use super::lanes::Lanes;
use super::{Outputs, Route, convert};
use crate::plugin::Plugin;
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
            Verdict::Done { reply, publishes } => match done(route, out, &plugin, &msg, reply, publishes).await {
                Ok(()) => return,
                // Dead-lettered below, and the requester told why.
                Err(Unsent::Reply(reason)) => reason,
                Err(Unsent::Publish(reason)) => match retry(route, out, cancel, &mut msg, started, None, reason).await {
                    Some(gave_up) => gave_up,
                    None => continue,
                },
            },
            Verdict::Retry { delay, reason } => match retry(route, out, cancel, &mut msg, started, delay, reason).await {
                Some(gave_up) => gave_up,
                None => continue,
            },
            Verdict::Reject { reason } => reason,
        };
        let letter = DeadLetter { route: &route.name, plugin: &plugin, message: &msg, reason: &reason };
        // A requester told 500 may count on the dead letter; when it could not be
        // stored the answer is 503, so it (or `dlq replay`) knows to try again.
        let code = match out.dead_letters.send(letter).await {
            Ok(()) => {
                Metrics::bump(&out.metrics.dead_lettered);
                "500"
            }
            Err(err) => {
                Metrics::bump(&out.metrics.dead_letter_failures);
                tracing::error!(route = %route.name, subject = %msg.subject, "core message lost: dead letter failed: {err:#}");
                "503"
            }
        };
        error_reply(out, &msg, &reason, code).await;
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
    if let Err(err) = out.client.publish_with_headers(reply_to.clone(), headers, Default::default()).await {
        Metrics::bump(&out.metrics.publish_failures);
        tracing::warn!(subject = %msg.subject, reply = %reply_to, "error reply ({code}) not sent: {err}");
    }
}

/// Why a Done verdict could not be carried out.
enum Unsent {
    /// A buffered publish: the message fails like a Retry.
    Publish(String),
    /// The reply: the requester gets an error reply, the message a dead letter.
    Reply(String),
}

/// Send buffered publishes, then the reply (an empty one for an Ack to a request).
/// All are checked against what the server takes first, so a failure sends
/// nothing (a retry then sends nothing twice) and names what failed.
async fn done(
    route: &Route,
    out: &Outputs,
    plugin: &Plugin,
    msg: &Message,
    reply: Option<Reply>,
    publishes: Vec<Publish>,
) -> Result<(), Unsent> {
    let reply = msg.reply.as_ref().map(|to| (to, reply.unwrap_or(Reply { payload: Vec::new(), headers: Vec::new() })));
    let max_payload = out.client.max_payload();
    if let Some((to, reply)) = &reply
        && let Some(why) = dispatch::unsendable(&reply.headers, reply.payload.len(), max_payload)
    {
        return Err(unsent_reply(route, plugin, msg, to, &why));
    }
    for publish in &publishes {
        if let Some(why) = dispatch::unsendable(&publish.headers, publish.payload.len(), max_payload) {
            return Err(unsent_publish(route, out, plugin, &publish.subject, &why));
        }
    }
    for publish in publishes {
        if let Err(why) = send(out, publish.subject.clone(), &publish.headers, publish.payload).await {
            return Err(unsent_publish(route, out, plugin, &publish.subject, &why));
        }
    }
    match reply {
        Some((to, reply)) => {
            send(out, to.clone(), &reply.headers, reply.payload).await.map_err(|why| unsent_reply(route, plugin, msg, to, &why))?;
            Metrics::bump(&out.metrics.replied);
        }
        None => Metrics::bump(&out.metrics.acked),
    }
    Ok(())
}

fn unsent_publish(route: &Route, out: &Outputs, plugin: &Plugin, subject: &str, why: &str) -> Unsent {
    Metrics::bump(&out.metrics.publish_failures);
    let reason = format!("route `{}`, plugin `{}`: publish to `{subject}` not sent: {why}", route.name, plugin.spec.name);
    tracing::warn!(route = %route.name, plugin = %plugin.spec.name, %subject, "{reason}; retrying the message");
    Unsent::Publish(reason)
}

fn unsent_reply(route: &Route, plugin: &Plugin, msg: &Message, to: &str, why: &str) -> Unsent {
    tracing::warn!(
        route = %route.name, plugin = %plugin.spec.name, subject = %msg.subject, reply = %to,
        "reply not sent: {why}; answering with an error and dead-lettering the message"
    );
    Unsent::Reply(format!("reply not sent: {why}"))
}

/// A Retry verdict, or a Done verdict whose publish could not be sent: wait out
/// the delay (the plugin's, else the backoff) and return `None` to call the
/// plugin again, or, out of attempts or time, the reason to dead-letter with.
async fn retry(
    route: &Route,
    out: &Outputs,
    cancel: &CancellationToken,
    msg: &mut Message,
    started: Instant,
    delay: Option<Duration>,
    reason: String,
) -> Option<String> {
    let delay = delay.unwrap_or_else(|| route.backoff.delay_after(msg.attempt));
    let in_budget = started.elapsed() + delay <= route.config.retry.max_elapsed;
    if msg.attempt < u64::from(route.config.retry.attempts.max(1)) && in_budget && !cancel.is_cancelled() {
        Metrics::bump(&out.metrics.retried);
        tracing::debug!(route = %route.name, attempt = msg.attempt, ?delay, "retrying: {reason}");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            // Shutting down: stop waiting; the next attempt still runs.
            () = cancel.cancelled() => {}
        }
        msg.attempt += 1;
        return None;
    }
    Some(format!("gave up after {} attempt(s) in {:?}: {reason}", msg.attempt, started.elapsed()))
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
