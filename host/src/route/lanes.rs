//! Ordering lanes: messages with the same key go to the same lane and are handled
//! one after the other, in arrival order; different lanes run concurrently.

use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::mpsc;

use crate::workers::Workers;

/// Messages queued per lane before the reader waits (backpressure).
const LANE_CAPACITY: usize = 64;

pub(super) struct Lanes<T> {
    senders: Vec<mpsc::Sender<T>>,
}

impl<T: Send + 'static> Lanes<T> {
    /// Start `count` lanes, each running `handle` on its items in order until
    /// every sender is dropped and its queue is empty.
    pub(super) fn start<F, Fut>(count: usize, name: &str, workers: &mut Workers, handle: F) -> Self
    where
        F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let senders = (0..count.max(1))
            .map(|lane| {
                let (tx, mut rx) = mpsc::channel::<T>(LANE_CAPACITY);
                let handle = handle.clone();
                workers.spawn(format!("{name} lane {lane}"), async move {
                    while let Some(item) = rx.recv().await {
                        handle(item).await;
                    }
                });
                tx
            })
            .collect();
        Self { senders }
    }

    /// Queue `item` on the lane of `key` (waits while that lane is full).
    pub(super) async fn send(&self, key: Option<&str>, item: T) {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let lane = (hasher.finish() % self.senders.len() as u64) as usize;
        // A lane only stops after its sender is dropped, so this cannot fail.
        let _ = self.senders[lane].send(item).await;
    }
}
