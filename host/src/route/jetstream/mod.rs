//! The JetStream driver: a durable pull consumer, read by the route's workers
//! (or, with `order_by`, by one reader that feeds ordering lanes).
//!
//! Gates before a message is taken, so no delivery attempt is spent waiting: an
//! open breaker stops pulling (what is buffered is nak'd with the breaker's
//! delay), and an unkeyed rate limit is waited for before the next pull.

mod breaker;
mod held;
mod lag;
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
use crate::config::JetStreamSpec;
use crate::workers::Workers;

/// Pauses before re-opening a consumer whose message stream failed, or that
/// could not be opened: the first re-open is at once (a deleted consumer is
/// simply made again), then the pause doubles from `REOPEN_FIRST` up to
/// `REOPEN_MAX` until a message arrives. While a consumer has no leader (just
/// made, or its node lost) every pull request is answered "no responders";
/// re-opening at once in a loop would only load the cluster electing it.
const REOPEN_FIRST: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(1);
/// The bound on opening a consumer (stream and consumer lookups, and the
/// consumer's creation). During an election the cluster can drop a JetStream
/// API request unanswered, and the client's own request timeout (10 s) would
/// idle the route that long; retried at once instead.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// When the stream may be re-opened after a failure, and the pause
    /// after the next one (see `REOPEN_FIRST`).
    reopen_at: Instant,
    pause: Duration,
}

impl Feed {
    fn new(messages: pull::Stream) -> Self {
        let now = Instant::now();
        Feed {
            messages: Some(messages),
            buffered: VecDeque::with_capacity(PREFETCH),
            probing: false,
            reopen_at: now,
            pause: Duration::ZERO,
        }
    }

    /// The stream failed, or could not be opened: re-open after a pause.
    fn failed(&mut self) {
        self.messages = None;
        self.reopen_at = Instant::now() + self.pause;
        self.pause = (self.pause * 2).clamp(REOPEN_FIRST, REOPEN_MAX);
    }
}

/// A JetStream route: the route, its consumer's settings, and what this host
/// knows of the messages it holds.
pub(super) struct Consumer {
    route: Arc<Route>,
    spec: JetStreamSpec,
    /// Received and not yet started, kept alive.
    held: Held,
    /// Failed for good, their dead letter not stored yet.
    owed: OwedDeadLetters,
    /// Deliveries an open breaker spent, per stream sequence.
    breaker_naks: BreakerNaks,
}

pub(super) async fn start(
    route: Arc<Route>,
    spec: JetStreamSpec,
    out: Outputs,
    cancel: CancellationToken,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let ack_wait = spec.ack_wait;
    let c = Arc::new(Consumer {
        route,
        spec,
        held: Held::new(ack_wait),
        owed: OwedDeadLetters::default(),
        breaker_naks: BreakerNaks::default(),
    });
    // Bind once now so a bad stream or consumer config fails startup loudly; a
    // cluster that is not ready yet is waited for.
    let deadline = Instant::now() + out.startup_timeout;
    let what = format!("route `{}`: binding its consumer", c.route.name);
    let messages = broker::retrying(&what, deadline, || open(&c, &out, false)).await?;
    let feed = Arc::new(Mutex::new(Feed::new(messages)));
    let name = format!("route `{}`", c.route.name);
    {
        let (c, out, cancel, feed) = (c.clone(), out.clone(), cancel.clone(), feed.clone());
        workers.spawn(format!("{name} keep-alive"), async move { keep_held_alive(&c, &out, &cancel, &feed).await });
    }
    {
        let (c, out, cancel) = (c.clone(), out.clone(), cancel.clone());
        workers.spawn(format!("{name} consumer info"), async move { lag::watch(&c, &out, &cancel).await });
    }
    match c.route.spec.order_by.clone() {
        Some(order_by) => {
            let (c2, o) = (c.clone(), out.clone());
            let lanes = Lanes::start(c.route.spec.concurrency, &name, workers, move |msg: JsMessage| {
                let (c, out) = (c2.clone(), o.clone());
                async move { settle::handle(&c, &out, msg).await }
            });
            workers.spawn(format!("{name} reader"), async move {
                while let Some(msg) = next(&c, &out, &cancel, &feed).await {
                    let parsed = convert::from_jetstream(&msg, c.spec.max_deliver);
                    let key = order_by.extract(&parsed).map(str::to_owned);
                    lanes.send(key.as_deref(), msg).await;
                }
            });
        }
        None => {
            for _ in 0..c.route.spec.concurrency {
                let (c, out, cancel, feed) = (c.clone(), out.clone(), cancel.clone(), feed.clone());
                workers.spawn(name.clone(), async move {
                    while let Some(msg) = next(&c, &out, &cancel, &feed).await {
                        settle::handle(&c, &out, msg).await;
                    }
                });
            }
        }
    }
    Ok(())
}

/// Bind the durable consumer (created when missing, checked against the file
/// when it exists) and start pulling from it, within `OPEN_TIMEOUT`.
async fn open(c: &Consumer, out: &Outputs, probing: bool) -> Result<pull::Stream, Failure> {
    tokio::time::timeout(OPEN_TIMEOUT, bind(c, out, probing)).await.unwrap_or_else(|_| {
        Err(Failure::Transient(anyhow::anyhow!("the cluster did not answer within {OPEN_TIMEOUT:?} (electing a leader?)")))
    })
}

async fn bind(c: &Consumer, out: &Outputs, probing: bool) -> Result<pull::Stream, Failure> {
    let spec = &c.spec;
    let stream = out.js.get_stream(&spec.stream).await.map_err(|err| {
        let text = anyhow::anyhow!("stream `{}`: {err}", spec.stream);
        match err.kind() {
            GetStreamErrorKind::JetStream(e) if e.error_code() != ErrorCode::STREAM_NOT_FOUND => {
                Failure::from_jetstream(Some(e.error_code()), text)
            }
            _ => Failure::Transient(text),
        }
    })?;
    let wanted = pull::Config {
        durable_name: Some(spec.durable.clone()),
        filter_subjects: spec.filter_subjects.clone(),
        max_deliver: SERVER_MAX_DELIVER,
        ack_wait: spec.ack_wait,
        max_ack_pending: spec.max_ack_pending,
        ..Default::default()
    };
    let consumer = broker::ensure_consumer(&stream, wanted, spec.update_consumer).await?;
    // While probing, pull only what the probes may take.
    let batch = if probing { breaker::probe_batch(c) } else { spec.batch };
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
        .map_err(|e| Failure::Transient(anyhow::anyhow!("pulling from consumer `{}`: {e}", spec.durable)))
}

/// The next message to handle, after the gates; `None` once cancelled.
async fn next(c: &Consumer, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) -> Option<JsMessage> {
    loop {
        if cancel.is_cancelled() {
            return None;
        }
        if let Some(wait) = c.route.breaker.as_ref().and_then(|b| b.blocked_for()) {
            breaker::pause(c, out, feed, wait).await;
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(wait) => continue,
            }
        }
        if let Some(limit) = c.route.rate_limit.as_ref().filter(|l| !l.is_keyed()) {
            let waiting = Instant::now();
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = limit.until_ready(None) => {}
            }
            c.route.metrics.waited_for_permit(waiting.elapsed());
        }
        let mut feed = feed.lock().await;
        if cancel.is_cancelled() {
            // What is buffered goes back to the server (see `keep_held_alive`);
            // taking it now, or re-opening the consumer, would race that.
            return None;
        }
        let probing = c.route.breaker.as_ref().is_some_and(|b| b.is_probing());
        if feed.messages.is_some() && feed.probing != probing {
            // The breaker changed phase: re-open with the batch size that fits.
            breaker::nak_received(c, out, &mut feed, Duration::from_millis(1)).await;
        }
        if let Some(msg) = feed.buffered.pop_front() {
            return Some(msg);
        }
        if feed.messages.is_none() {
            let reopen_at = feed.reopen_at;
            if reopen_at > Instant::now() {
                drop(feed);
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep_until(reopen_at.into()) => continue,
                }
            }
            match open(c, out, probing).await {
                Ok(messages) => {
                    feed.messages = Some(messages);
                    feed.probing = probing;
                    out.health.route_up(&c.route.name);
                }
                Err(Failure::Transient(err) | Failure::Fatal(err)) => {
                    tracing::warn!(route = %c.route.name, "cannot open consumer: {err:#}; retrying");
                    out.health.route_down(&c.route.name, format!("cannot open its consumer: {err:#}"));
                    feed.failed();
                    continue;
                }
            }
        }
        let messages = feed.messages.as_mut()?;
        tokio::select! {
            () = cancel.cancelled() => return None,
            next = messages.next() => match next {
                Some(Ok(msg)) => {
                    c.held.hold(&msg);
                    feed.pause = Duration::ZERO;
                    prefetch(c, &mut feed, PREFETCH);
                    return Some(msg);
                }
                // Heartbeats lost to a slow moment or a reconnect: not fatal.
                Some(Err(err)) if err.kind() == MessagesErrorKind::MissingHeartbeat => {
                    tracing::debug!(route = %c.route.name, "missing heartbeat");
                }
                // "no responders" too, while the consumer's leader is elected.
                Some(Err(err)) => {
                    tracing::warn!(route = %c.route.name, "consumer stream error: {err}; re-opening");
                    feed.failed();
                }
                None => feed.failed(),
            },
        }
    }
}

/// Shutting down: give back at once what was received and not started, so
/// another host handles it now rather than after `ack_wait`.
async fn return_buffered(c: &Consumer, out: &Outputs, feed: &mut Feed) {
    let returned = take_received(c, feed);
    if !returned.is_empty() {
        tracing::info!(route = %c.route.name, count = returned.len(), "shutting down: returning messages not started");
    }
    for msg in returned {
        settle::ack(c, out, &msg, AckKind::Nak(None)).await;
    }
}

/// Every message received and not started (buffered, or waiting in the pull
/// stream), released from the keep-alive; the pull stream is dropped.
fn take_received(c: &Consumer, feed: &mut Feed) -> Vec<JsMessage> {
    let mut received: Vec<JsMessage> = feed.buffered.drain(..).collect();
    if let Some(mut messages) = feed.messages.take() {
        while let Some(Some(Ok(msg))) = messages.next().now_or_never() {
            received.push(msg);
        }
    }
    for msg in &received {
        c.held.release(msg);
    }
    received
}

/// Move what the pull stream already received into `feed.buffered` (up to
/// `limit` there), without waiting.
fn prefetch(c: &Consumer, feed: &mut Feed, limit: usize) {
    let Some(messages) = feed.messages.as_mut() else { return };
    while feed.buffered.len() < limit {
        match messages.next().now_or_never() {
            Some(Some(Ok(msg))) => {
                c.held.hold(&msg);
                feed.buffered.push_back(msg);
            }
            Some(Some(Err(err))) if err.kind() == MessagesErrorKind::MissingHeartbeat => {
                tracing::debug!(route = %c.route.name, "missing heartbeat");
            }
            Some(Some(Err(err))) => {
                tracing::warn!(route = %c.route.name, "consumer stream error: {err}; re-opening");
                feed.failed();
                return;
            }
            Some(None) => {
                feed.failed();
                return;
            }
            None => return,
        }
    }
}

/// Keep every message this host holds but has not started alive, every third
/// of `ack_wait` (see `held`). What the pull stream received meanwhile is moved
/// into the buffer first, so it is held too. On shutdown, give it all back.
async fn keep_held_alive(c: &Consumer, out: &Outputs, cancel: &CancellationToken, feed: &Mutex<Feed>) {
    let period = (c.spec.ack_wait / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                // Workers waiting on the pull stream let go of the lock on cancel.
                return return_buffered(c, out, &mut *feed.lock().await).await;
            }
            () = tokio::time::sleep(period) => {}
        }
        // A worker holding the lock is waiting for the next message, so nothing
        // is buffered then: skip the move rather than wait for it.
        if let Ok(mut feed) = tokio::time::timeout(period / 4, feed.lock()).await {
            match c.held.paused_for() {
                // What was received is stale (see `held`), and what the pull
                // request still brings may have been delivered during the
                // pause: drop both and pull afresh.
                Some(paused) => {
                    let left = take_received(c, &mut feed).len();
                    tracing::warn!(
                        route = %c.route.name,
                        "the host was paused for {paused:?} (longer than two thirds of ack_wait): {left} messages received \
                         and not started are left to their redelivery"
                    );
                }
                None => prefetch(c, &mut feed, usize::MAX),
            }
        }
        c.held.keep_alive(&out.client).await;
    }
}
