//! Messages a host has pulled but not started must not outlive `ack_wait`
//! and be handled twice: no fault at all, only a slow handler or a slow host
//! beside a fast one.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::{drained, pending, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, within};

/// Count the handlings of each message: the faulty plugin publishes the
/// payload (`{"id": n}`) to `seen.x` once per successful call.
fn tally(seen: &mut HashMap<u64, u32>, msg: &async_nats::Message) {
    let value: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json payload");
    *seen.entry(value["id"].as_u64().expect("id")).or_default() += 1;
}

/// Tally what arrives until every one of `total` messages was handled.
async fn collect(sub: &mut async_nats::Subscriber, seen: &mut HashMap<u64, u32>, total: u64) {
    let what = format!("{total} messages handled");
    within(Duration::from_secs(120), &what, async {
        while (seen.len() as u64) < total {
            match sub.next().await {
                Some(msg) => tally(seen, &msg),
                None => panic!("subscription closed"),
            }
        }
    })
    .await;
}

/// A host running the faulty plugin on `jobs`, `sleep_ms` per message, each
/// handling published to `seen.x`.
fn seen_jobs(url: &str, sleep_ms: u64, route: &str) -> String {
    faulty_jobs(url, &format!("config = {{ publish = [\"seen.x\"], sleep_ms = {sleep_ms} }}"), route)
}

/// Tally what still arrives: anything handled twice would have published again by now.
async fn tally_late(sub: &mut async_nats::Subscriber, seen: &mut HashMap<u64, u32>) {
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        tally(seen, &msg);
    }
}

/// One host, a 400 ms handler, one at a time, `ack_wait` 1 s: the messages
/// waiting in its buffer must be kept alive, not redelivered and handled again.
#[tokio::test]
async fn a_slow_handler_handles_each_buffered_message_once() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut sub = client.subscribe("seen.>").await.expect("subscribe");
    let config = seen_jobs(nats.url(), 400, "concurrency = 1\nack_wait = \"1s\"");
    let host = Host::start(&config).await;
    publish_many(&js, "jobs.slow", 12, |i| format!(r#"{{"id":{i}}}"#).into_bytes()).await;

    let mut seen = HashMap::new();
    collect(&mut sub, &mut seen, 12).await;
    drained(&js, "JOBS", "jobs").await;
    tally_late(&mut sub, &mut seen).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    host.stop().await;
}

/// A slow host (one at a time, 40 ms each) beside a fast one on the same
/// durable consumer: the slow one pulls a whole batch, yet no message is
/// handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_host_beside_a_fast_one_handles_nothing_twice() {
    const TOTAL: u64 = 600;
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut sub = client.subscribe("seen.>").await.expect("subscribe");
    let route = "ack_wait = \"2s\"\nbatch = 500";
    let slow = Host::start(&seen_jobs(nats.url(), 40, &format!("concurrency = 1\n{route}"))).await;
    let fast = Host::start(&seen_jobs(nats.url(), 2, &format!("concurrency = 4\n{route}"))).await;
    publish_many(&js, "jobs.mixed", TOTAL as usize, |i| format!(r#"{{"id":{i}}}"#).into_bytes()).await;

    let mut seen = HashMap::new();
    collect(&mut sub, &mut seen, TOTAL).await;
    drained(&js, "JOBS", "jobs").await;
    tally_late(&mut sub, &mut seen).await;
    let twice = seen.values().filter(|n| **n > 1).count();
    let consumer = js.get_stream("JOBS").await.expect("stream").consumer_info("jobs").await.expect("consumer");
    println!("handled {} messages, {twice} more than once; redelivered {}", seen.len(), consumer.num_redelivered);
    assert_eq!(twice, 0, "no message may be handled twice without a fault");
    slow.stop().await;
    fast.stop().await;
}

/// A host stopped gracefully gives back what it pulled and did not start: a
/// second host gets those messages at once, not after `ack_wait` (30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_host_returns_its_buffered_messages_at_once() {
    const TOTAL: u64 = 6;
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut sub = client.subscribe("seen.>").await.expect("subscribe");
    let route = "ack_wait = \"30s\"";
    let first = Host::start(&seen_jobs(nats.url(), 500, &format!("concurrency = 1\n{route}"))).await;
    publish_many(&js, "jobs.held", TOTAL as usize, |i| format!(r#"{{"id":{i}}}"#).into_bytes()).await;
    // The first host holds every message: one in its handler, the rest buffered.
    eventually(Duration::from_secs(10), "the first host to hold every message", || async {
        (pending(&js, "JOBS", "jobs").await == (0, TOTAL as usize)).then_some(())
    })
    .await;
    let second = Host::start(&seen_jobs(nats.url(), 1, &format!("concurrency = 4\n{route}"))).await;

    let mut seen = HashMap::new();
    let (status, output) = first.stop().await;
    assert!(status.success(), "{output}");
    // Within a few seconds, far less than ack_wait: the rest were nak'd on stop.
    within(Duration::from_secs(8), "the second host to handle what the first gave back", async {
        while (seen.len() as u64) < TOTAL {
            tally(&mut seen, &sub.next().await.expect("subscription open"));
        }
    })
    .await;
    drained(&js, "JOBS", "jobs").await;
    assert!(seen.values().all(|n| *n == 1), "each handled once: {seen:?}");
    second.stop().await;
}
