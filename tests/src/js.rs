//! JetStream helpers for assertions: counts, consumer state, stream contents.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;

/// Messages currently in `stream`.
pub async fn count(js: &jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap_or_else(|e| panic!("stream {stream}: {e}"));
    s.info().await.expect("stream info").state.messages
}

/// Messages in `stream`, or None when JetStream does not answer within 2 s
/// (a cluster electing leaders after a node was killed).
pub async fn try_count(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let info = async { js.get_stream(stream).await.ok()?.info().await.ok().map(|i| i.state.messages) };
    tokio::time::timeout(Duration::from_secs(2), info).await.ok().flatten()
}

/// (num_pending, num_ack_pending) of a durable consumer.
pub async fn pending(js: &jetstream::Context, stream: &str, consumer: &str) -> (u64, usize) {
    let s = js.get_stream(stream).await.expect("stream");
    let info = s.consumer_info(consumer).await.expect("consumer info");
    (info.num_pending, info.num_ack_pending)
}

/// Create a plain stream for test output (what plugins publish to).
pub async fn create_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create stream {name}: {e}"));
}

/// Every message in `stream`, oldest first, read without consuming them.
pub async fn messages(js: &jetstream::Context, stream: &str) -> Vec<jetstream::message::StreamMessage> {
    let s = js.get_stream(stream).await.expect("stream");
    let total = count(js, stream).await;
    let mut out = Vec::new();
    let first = s.cached_info().state.first_sequence;
    let mut seq = first;
    while (out.len() as u64) < total {
        if let Ok(msg) = s.get_raw_message(seq).await {
            out.push(msg);
        }
        seq += 1;
        assert!(seq < first + total + 100_000, "sequence gap too large reading {stream}");
    }
    out
}

/// Publish `n` messages and wait for all stream acks, a window at a time.
pub async fn publish_many(js: &jetstream::Context, subject: &str, n: usize, payload: impl Fn(usize) -> Vec<u8>) {
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(js.publish(subject.to_owned(), payload(i).into()).await.expect("publish"));
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.expect("publish ack");
            }
        }
    }
    for ack in acks {
        ack.await.expect("publish ack");
    }
}

/// Subscribe and collect whatever arrives within `window` (used to show that
/// something did NOT happen, after the positive condition was awaited).
pub async fn quiet(sub: &mut async_nats::Subscriber, window: Duration) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(window, sub.next()).await {
        got.push(msg);
    }
    got
}

/// Wait (bounded) until a durable consumer has nothing pending and nothing
/// waiting for an ack.
pub async fn drained(js: &jetstream::Context, stream: &str, consumer: &str) {
    crate::eventually(Duration::from_secs(60), &format!("consumer `{consumer}` to have nothing pending"), || async {
        (pending(js, stream, consumer).await == (0, 0)).then_some(())
    })
    .await;
}

/// A header of a stored message, or "" when it is absent.
pub fn header<'a>(msg: &'a jetstream::message::StreamMessage, name: &str) -> &'a str {
    msg.headers.get(name).map(|v| v.as_str()).unwrap_or_default()
}
