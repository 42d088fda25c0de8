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
//! So a worker that takes a message whose last keep-alive is older than two
//! thirds of `ack_wait` leaves it to that redelivery instead of handling it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::Subject;
use async_nats::jetstream::Message as JsMessage;

/// The body of an in-progress ack (`AckKind::Progress`).
const PROGRESS: &[u8] = b"+WPI";

#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<HashMap<AckSubject, Instant>>);

/// A delivery's ack subject (unique per delivery), hashed by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AckSubject(Subject);

impl std::hash::Hash for AckSubject {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl Held {
    /// `msg` was received and waits for a worker.
    pub(crate) fn hold(&self, msg: &JsMessage) {
        if let Some(reply) = &msg.reply {
            self.lock().insert(AckSubject(reply.clone()), Instant::now());
        }
    }

    /// A worker took `msg` (or it was nak'd): no longer ours to keep alive.
    /// Whether it may still be handled: false when its last sign of life is so
    /// old that the server may have redelivered it (see the module doc).
    pub(crate) fn release(&self, msg: &JsMessage, ack_wait: Duration) -> bool {
        let Some(reply) = &msg.reply else { return true };
        match self.lock().remove(&AckSubject(reply.clone())) {
            Some(alive) => alive.elapsed() < ack_wait * 2 / 3,
            None => true,
        }
    }

    /// Tell the server every held message is still wanted.
    pub(crate) async fn keep_alive(&self, client: &async_nats::Client) {
        let subjects: Vec<Subject> = self.lock().keys().map(|s| s.0.clone()).collect();
        for subject in &subjects {
            if let Err(err) = client.publish(subject.clone(), PROGRESS.into()).await {
                tracing::debug!("in-progress ack of a held message failed: {err}");
            }
        }
        let now = Instant::now();
        let mut held = self.lock();
        for subject in subjects {
            if let Some(alive) = held.get_mut(&AckSubject(subject)) {
                *alive = now;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AckSubject, Instant>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
