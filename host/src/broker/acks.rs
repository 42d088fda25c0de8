//! JetStream acks, handed to the client together.
//!
//! The client writes what it holds each time its connection task runs. Acked
//! by each route worker as it finished, every message cost a `writev` of its
//! own: the connection task, woken on the other core, wrote each ack as it
//! came. In `make bench`'s JetStream scenario that was a sixth of the host's
//! CPU, more than the wasm calls (79k `writev` for 200k messages, against
//! 13k for a raw consumer acking from one task). The routes queue their acks here instead;
//! one task takes what is queued, lets the workers settle what they hold
//! first (one pass through the scheduler), and hands it all to the client at
//! once: one write for many acks.
//!
//! Only acks come this way: a reply or a publish waits on nobody's ack but
//! its receiver's, and the extra pass through the scheduler is latency a
//! requester would see (sequential request/reply p50 went 1.22 → 1.42 × raw
//! when replies came through here too). An ack queued here counts as sent,
//! as one handed to the client always did (only `double_ack` waits for the
//! server); [`Acks::flush`] waits until everything queued before it was
//! handed over, for shutdown. The queue is bounded, so a connection that
//! cannot write makes the workers wait, as the client did.

use async_nats::Subject;
use async_nats::jetstream::AckKind;
use tokio::sync::{mpsc, oneshot};

/// Acks handed to the client in one go, at most.
const TOGETHER: usize = 256;
/// Acks queued, at most, before a worker waits.
const QUEUE: usize = 4 * 1024;

#[derive(Debug, Clone)]
pub struct Acks(mpsc::Sender<Item>);

#[derive(Debug)]
enum Item {
    Ack(Subject, AckKind),
    /// Everything before this was handed to the client.
    Flushed(oneshot::Sender<()>),
}

impl Acks {
    /// Start the task that hands the acks to `client`.
    pub fn start(client: async_nats::Client) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(hand_over(client, rx));
        Self(tx)
    }

    /// Queue `kind` for the delivery whose ack subject (reply subject) is `reply`.
    pub async fn send(&self, reply: Subject, kind: AckKind) -> Result<(), String> {
        self.0.send(Item::Ack(reply, kind)).await.map_err(|_| "the host's connection is closing".to_owned())
    }

    /// Wait until every ack queued before this call was handed to the client.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.0.send(Item::Flushed(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn hand_over(client: async_nats::Client, mut rx: mpsc::Receiver<Item>) {
    let mut queued = Vec::with_capacity(TOGETHER);
    while rx.recv_many(&mut queued, TOGETHER).await > 0 {
        // Woken by the first ack of a round: let the workers settle what they
        // hold before handing over (under load a round gathers dozens; idle,
        // this costs one pass through the scheduler). Without this pass the
        // round held one ack and nothing was gained.
        tokio::task::yield_now().await;
        while queued.len() < TOGETHER
            && let Ok(item) = rx.try_recv()
        {
            queued.push(item);
        }
        for item in queued.drain(..) {
            match item {
                Item::Ack(reply, kind) => {
                    if let Err(err) = client.publish(reply.clone(), kind.into()).await {
                        tracing::warn!(%reply, "ack not sent (the server will redeliver): {err}");
                    }
                }
                Item::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}
