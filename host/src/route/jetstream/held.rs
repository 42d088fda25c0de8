//! JetStream messages this host has received but not started handling yet:
//! pulled in a batch, waiting in the route's buffer or in an ordering lane.
//!
//! Without care such a message outlives `ack_wait` while the workers are busy,
//! the server gives it to another host, and both handle it. So a held message
//! is kept alive with in-progress acks, every third of `ack_wait`, until a
//! worker takes it (from then on the settle step keeps it alive). Pulling a
//! batch larger than the route can start within `ack_wait` then costs waiting
//! time, never a duplicate handling.
//!
//! A host that was paused (SIGSTOP, a VM freeze) sent no in-progress acks
//! meanwhile, and the server may have given its held messages to another host.
//! So a message whose last sign of life is older than two thirds of
//! `ack_wait` is stale: it is not kept alive any more, and a worker that takes
//! it leaves it to that redelivery instead of handling it. A message received
//! counts as alive since the last keep-alive round, not since it arrived: one
//! read after a pause may have been delivered before it, so until the
//! keep-alive runs again what arrives is stale too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::Subject;
use async_nats::jetstream::Message as JsMessage;

/// The body of an in-progress ack (`AckKind::Progress`).
const PROGRESS: &[u8] = b"+WPI";

#[derive(Debug)]
pub(crate) struct Held {
    /// Older signs of life than this may have been redelivered elsewhere.
    stale_after: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Each held delivery's last sign of life.
    alive: HashMap<AckSubject, Instant>,
    /// When the keep-alive last ran.
    round: Instant,
}

/// A delivery's ack subject (unique per delivery), hashed by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AckSubject(Subject);

impl std::hash::Hash for AckSubject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl Held {
    pub(crate) fn new(ack_wait: Duration) -> Self {
        Self { stale_after: ack_wait * 2 / 3, inner: Mutex::new(Inner { alive: HashMap::new(), round: Instant::now() }) }
    }

    /// `msg` was received and waits for a worker.
    pub(crate) fn hold(&self, msg: &JsMessage) {
        if let Some(reply) = &msg.reply {
            let mut inner = self.lock();
            let round = inner.round;
            inner.alive.insert(AckSubject(reply.clone()), round);
        }
    }

    /// A worker took `msg` (or it was given back): no longer ours to keep
    /// alive. Whether it may still be handled: false when it is stale.
    pub(crate) fn release(&self, msg: &JsMessage) -> bool {
        let Some(reply) = &msg.reply else { return true };
        match self.lock().alive.remove(&AckSubject(reply.clone())) {
            Some(alive) => alive.elapsed() < self.stale_after,
            None => true,
        }
    }

    /// How long since the last keep-alive round, when that is so long that
    /// the host must have been paused (or starved) and what it holds is stale.
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        Some(self.lock().round.elapsed()).filter(|since| *since >= self.stale_after)
    }

    /// Tell the server every held message that is not stale is still wanted,
    /// and start a new round.
    pub(crate) async fn keep_alive(&self, client: &async_nats::Client) {
        let subjects: Vec<Subject> = {
            let inner = self.lock();
            inner.alive.iter().filter(|(_, alive)| alive.elapsed() < self.stale_after).map(|(s, _)| s.0.clone()).collect()
        };
        for subject in &subjects {
            if let Err(err) = client.publish(subject.clone(), PROGRESS.into()).await {
                tracing::debug!("in-progress ack of a held message failed: {err}");
            }
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.round = now;
        for subject in subjects {
            if let Some(alive) = inner.alive.get_mut(&AckSubject(subject)) {
                *alive = now;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
