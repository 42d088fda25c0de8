//! The breaker's JetStream side, in one place. While the breaker is open the
//! route stops pulling and naks what it holds with the breaker's delay; while
//! it probes, the route pulls only as many messages as there are probes. The
//! deliveries such naks spend are remembered per stream sequence, so they are
//! not counted as failed attempts against `max_deliver`.
//!
//! Kept in memory: after a restart (or on another host) they count again, so a
//! message the breaker held back many times may be dead-lettered early there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message as JsMessage};
use switchyard_abi::Message;

use super::super::Outputs;
use super::{Consumer, Feed, settle, take_received};

/// Entries kept at most; the oldest knowledge is dropped wholesale beyond it.
const MAX_TRACKED: usize = 100_000;

/// Stop pulling until the breaker lets probes through: nak what this host
/// holds with the breaker's delay.
pub(super) async fn pause(c: &Consumer, out: &Outputs, feed: &tokio::sync::Mutex<Feed>, wait: Duration) {
    let mut feed = feed.lock().await;
    if feed.messages.is_some() || !feed.buffered.is_empty() {
        tracing::info!(route = %c.route.name, ?wait, "breaker open: pausing the consumer");
        nak_received(c, out, &mut feed, wait).await;
    }
}

/// Nak (with `delay`) every message received and not started, and drop the
/// pull stream (it is re-opened with the batch size the breaker's phase allows).
pub(super) async fn nak_received(c: &Consumer, out: &Outputs, feed: &mut Feed, delay: Duration) {
    for msg in take_received(c, feed) {
        spent(c, &msg);
        settle::ack(c, out, &msg, AckKind::Nak(Some(delay))).await;
    }
}

/// The pull batch while probing: no more messages than probes.
pub(super) fn probe_batch(c: &Consumer) -> usize {
    c.route.spec.breaker.as_ref().map_or(1, |b| b.probes as usize)
}

/// This delivery of `js_msg` was spent by the breaker, not by a failure.
pub(super) fn spent(c: &Consumer, js_msg: &JsMessage) {
    if let Ok(info) = js_msg.info() {
        c.breaker_naks.bump(info.stream_sequence);
    }
}

/// The attempts of `msg` that failed: its deliveries less the breaker's naks.
pub(super) fn failed_attempts(c: &Consumer, msg: &Message) -> u64 {
    let spent = msg.delivery.as_ref().map_or(0, |d| c.breaker_naks.get(d.stream_sequence));
    msg.attempt.saturating_sub(spent)
}

#[derive(Debug, Default)]
pub(crate) struct BreakerNaks(Mutex<HashMap<u64, u64>>);

impl BreakerNaks {
    fn bump(&self, sequence: u64) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
        *map.entry(sequence).or_default() += 1;
    }

    fn get(&self, sequence: u64) -> u64 {
        self.lock().get(&sequence).copied().unwrap_or(0)
    }

    pub(crate) fn remove(&self, sequence: u64) {
        self.lock().remove(&sequence);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
