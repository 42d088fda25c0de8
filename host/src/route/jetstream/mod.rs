//! The JetStream driver: a durable pull consumer, read by the route's workers
//! (or, with `order_by`, by one reader that feeds ordering lanes).
//!
//! Gates before a message is taken, so no delivery attempt is spent waiting: an
//! open breaker stops pulling (what is buffered is nak'd with the breaker's
//! delay), and an unkeyed rate limit is waited for before the next pull.

mod breaker;
mod held;
mod owed;
mod settle;

pub(super) use breaker::BreakerNaks;
pub(super) use held::Held;
pub(super) use owed::OwedDeadLetters;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{AckKind, ErrorCode, Message as JsMessage};
use futures::{FutureExt, StreamExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::lanes::Lanes;
use super::{Outputs, Route, convert};
use crate::broker::{self, Failure};
use crate::workers::Workers;

/// Pause before re-opening a consumer whose message stream failed.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// The server's `max_deliver` on every consumer the host makes: unlimited. The
/// host counts a message's failed attempts (deliveries less those an open
/// breaker spent) and dead-letters it at the route's `max_deliver`; were the
/// server to stop first, a message whose dead letter could not be stored
/// would end neither handled nor dead-lettered nor pending.
const SERVER_MAX_DELIVER: i64 = -1;

/// How many already-received messages a worker moves from the pull stream into
/// the shared buffer at once (see the core driver's `Feed`).
const PREFETCH: usize = 64;

/// The consumer's message stream, opened lazily and re-opened after errors, and
/// the messages a worker already took from it for the others: under load a
/// worker takes its next message from `buffered` without waiting on the lock
/// holder or being woken one message at a time.
struct Feed {
    messages: Option<pull::Stream>,
    buffered: VecDeque<JsMessage>,
    /// Opened with a batch of `probes` while the breaker was half-open.
    probing: bool,
}

pub async fn start(route: Arc<Route>, out: Outputs, cancel: CancellationToken, workers: &mut Workers) -> anyhow::Result<()> {
    // Bind once now so a bad stream or consumer config fails startup loudly; a
    // cluster that is not ready yet is waited for.
    let deadline = Instant::now() + out.startup_timeout;
    let what = format!("route `{}`: binding its consumer", route.name);
    let messages = broker::retrying(&what, deadline, || open(&route, &out, false)).await?;
    let feed = Arc::new(Mutex::new(Feed { messages: Some(messages), buffered: VecDeque::with_capacity(PREFETCH), probing: false }));
    let name = format!("route `{}`", route.name);
    {
        let (route, out, cancel, feed) = (route.clone(), out.clone(), cancel.clone(), feed.clone());
        workers.spawn(format!("{name} keep-alive"), async move { keep_held_alive(&route, &out, &cancel, &feed).await });
    }
    match route.config.order_by.clone() {
        Some(order_by) => {
            let (r, o) = (route.clone(), out.clone());
            let lanes = Lanes::start(route.config.concurrency, &name, workers, move |msg: JsMessage| {
                let (route, out) = (r.clone(), o.clone());
                async move { settle::handle(&route, &out, msg).await }
            });
            workers.spawn(format!("{name} reader"), async move {
                while let Some(msg) = next(&route, &out, &cancel, &feed).await {
                    let parsed = convert::from_jetstream(&msg, route.config.max_deliver);
                    let key = order_by.extract(&parsed).map(str::to_owned);
                    lanes.send(key.as_deref(), msg).await;
                }
            });
        }
        None => {
            for _ in 0..route.config.concurrency {
                let (route, out, cancel, feed) = (route.clone(), out.clone(), cancel.clone(), feed.clone());
                workers.spawn(name.clone(), async move {
                    while let Some(msg) = next(&route, &out, &cancel, &feed).await {
                        settle::handle(&route, &out, msg).await;
                    }
                });
            }
        }
    }
    Ok(())
}

/// Bind the durable consumer (created when missing, checked against the file
/// when it exists) and start pulling from it.
async fn open(route: &Route, out: &Outputs, probing: bool) -> Result<pull::Stream, Failure> {
    let cfg = &route.config;
    let stream_name = cfg.stream.as_ref().map(|s| s.get_ref().as_str()).unwrap_or_default();
    let stream = out.js.get_stream(stream_name).await.map_err(|err| {
        let text = anyhow::anyhow!("stream `{stream_name}`: {err}");
        match err.kind() {
            GetStreamErrorKind::JetStream(e) if e.error_code() != ErrorCode::STREAM_NOT_FOUND => {
                Failure::from_jetstream(Some(e.error_code()), text)
            }
            _ => Failure::Transient(text),
        }
    })?;
    let wanted = pull::Config {
        durable_name: Some(cfg.durable_name().to_owned()),
        filter_subjects: cfg.subjects.clone(),
        max_deliver: SERVER_MAX_DELIVER,
        ack_wait: cfg.ack_wait,
        max_ack_pending: cfg.max_ack_pending,
        ..Default::default()
    };
    let consumer = broker::ensure_consumer(&stream, wanted, cfg.update_consumer).await?;
    // While probing, pull only what the probes may take; a rate-limited route
    // pulls no more than its burst, so pulled messages do not age while waiting.
    let mut batch = cfg.batch;
    if probing {
        batch = breaker::probe_batch(route);
    }
    if let Some(limit) = &cfg.rate_limit {
        batch = batch.min(limit.burst.unwrap_or(limit.rate).max(1) as usize);
    }
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
        .map_err(|e| Failure::Transient(anyhow::anyhow!("pulling from consumer `{}`: {e}", cfg.durable_name())))
}

/// The next message to handle, after the gates; `None` once cancelled.
async fn next(route: &Route, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) -> Option<JsMessage> {
    loop {
        if cancel.is_cancelled() {
            return None;
        }
        if let Some(wait) = route.breaker.as_ref().and_then(|b| b.blocked_for()) {
            breaker::pause(route, feed, wait).await;
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(wait) => continue,
            }
        }
        if let Some(limit) = route.rate_limit.as_ref().filter(|l| !l.is_keyed()) {
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = limit.until_ready(None) => {}
            }
        }
        let mut feed = feed.lock().await;
        if cancel.is_cancelled() {
            // What is buffered goes back to the server (see `keep_held_alive`);
            // taking it now, or re-opening the consumer, would race that.
            return None;
        }
        let probing = route.breaker.as_ref().is_some_and(|b| b.is_probing());
        if feed.messages.is_some() && feed.probing != probing {
            // The breaker changed phase: re-open with the batch size that fits.
            breaker::nak_received(route, &mut feed, Duration::from_millis(1)).await;
        }
        if let Some(msg) = feed.buffered.pop_front() {
            return Some(msg);
        }
        if feed.messages.is_none() {
            match open(route, out, probing).await {
                Ok(messages) => {
                    feed.messages = Some(messages);
                    feed.probing = probing;
                }
                Err(Failure::Transient(err) | Failure::Fatal(err)) => {
                    tracing::warn!(route = %route.name, "cannot open consumer: {err:#}; retrying");
                    drop(feed);
                    tokio::select! {
                        () = cancel.cancelled() => return None,
                        () = tokio::time::sleep(REOPEN_DELAY) => continue,
                    }
                }
            }
        }
        let messages = feed.messages.as_mut()?;
        tokio::select! {
            () = cancel.cancelled() => return None,
            next = messages.next() => match next {
                Some(Ok(msg)) => {
                    route.held.hold(&msg);
                    prefetch(route, &mut feed, PREFETCH);
                    return Some(msg);
                }
                // Heartbeats lost to a slow moment or a reconnect: not fatal.
                Some(Err(err)) if err.kind() == MessagesErrorKind::MissingHeartbeat => {
                    tracing::debug!(route = %route.name, "missing heartbeat");
                }
                Some(Err(err)) => {
                    tracing::warn!(route = %route.name, "consumer stream error: {err}; re-opening");
                    feed.messages = None;
                }
                None => feed.messages = None,
            },
        }
    }
}

/// Shutting down: give back at once what was received and not started, so
/// another host handles it now rather than after `ack_wait`.
async fn return_buffered(route: &Route, feed: &mut Feed) {
    let returned = take_received(route, feed);
    if !returned.is_empty() {
        tracing::info!(route = %route.name, count = returned.len(), "shutting down: returning messages not started");
    }
    for msg in returned {
        settle::ack(route, &msg, AckKind::Nak(None)).await;
    }
}

/// Every message received and not started (buffered, or waiting in the pull
/// stream), released from the keep-alive; the pull stream is dropped.
fn take_received(route: &Route, feed: &mut Feed) -> Vec<JsMessage> {
    let mut received: Vec<JsMessage> = feed.buffered.drain(..).collect();
    if let Some(mut messages) = feed.messages.take() {
        while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
            received.push(msg);
        }
    }
    for msg in &received {
        route.held.release(msg, route.config.ack_wait);
    }
    received
}

/// Move what the pull stream already received into `feed.buffered` (up to
/// `limit` there), without waiting.
fn prefetch(route: &Route, feed: &mut Feed, limit: usize) {
    let Some(messages) = feed.messages.as_mut() else { return };
    while feed.buffered.len() < limit {
        match messages.next().now_or_never() {
            Some(Some(Ok(msg))) => {
                route.held.hold(&msg);
                feed.buffered.push_back(msg);
            }
            Some(Some(Err(err))) if err.kind() == MessagesErrorKind::MissingHeartbeat => {
                tracing::debug!(route = %route.name, "missing heartbeat");
            }
            Some(Some(Err(err))) => {
                tracing::warn!(route = %route.name, "consumer stream error: {err}; re-opening");
                feed.messages = None;
                return;
            }
            Some(None) => {
                feed.messages = None;
                return;
            }
            None => return,
        }
    }
}

/// Keep every message this host holds but has not started alive, every third
/// of `ack_wait` (see `held`). What the pull stream received meanwhile is moved
/// into the buffer first, so it is held too. On shutdown, give it all back.
async fn keep_held_alive(route: &Route, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) {
    let period = (route.config.ack_wait / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                // Workers waiting on the pull stream let go of the lock on cancel.
                return return_buffered(route, &mut *feed.lock().await).await;
            }
            () = tokio::time::sleep(period) => {}
        }
        // A worker holding the lock is waiting for the next message, so nothing
        // is buffered then: skip the move rather than wait for it.
        if let Ok(mut feed) = tokio::time::timeout(period / 4, feed.lock()).await {
            prefetch(route, &mut feed, usize::MAX);
        }
        route.held.keep_alive(&out.client).await;
    }
}
