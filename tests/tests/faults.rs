//! Host-level faults: the host killed with SIGKILL mid-load and restarted, and
//! the nats-server restarted under the host. At least once, nothing lost.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::{count, create_stream, pending, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(240);

/// Collect every `seen.>` message (raw handlings, duplicates included) by `n`.
fn count_seen(mut sub: async_nats::Subscriber) -> tokio::task::JoinHandle<HashMap<u64, u32>> {
    tokio::spawn(async move {
        let mut seen = HashMap::new();
        // Ends once the stream is quiet for 3 s after the test has finished.
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(3), sub.next()).await {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                && let Some(n) = body["n"].as_u64()
            {
                *seen.entry(n).or_default() += 1;
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_three_times_loses_nothing() {
    const TOTAL: u64 = 100_000;
    const MAX_ACK_PENDING: u64 = 1000;
    let nats = NatsServer::start();
    let config = faulty_jobs(
        nats.url(),
        "config = { publish = [\"done.x\", \"seen.x\"] }",
        &format!("concurrency = 4\nbatch = 500\nmax_ack_pending = {MAX_ACK_PENDING}\nack_wait = \"2s\""),
    );
    let watcher = async_nats::ConnectOptions::new().subscription_capacity(1 << 22).connect(nats.url()).await.expect("connect");
    let seen = watcher.subscribe("seen.>").await.expect("subscribe");
    watcher.flush().await.expect("flush");
    let seen = count_seen(seen);
    let js = jetstream::new(nats.client().await);
    let mut host = Host::start(&config).await;
    create_stream(&js, "DONE", &["done.>"]).await;

    let publisher = {
        let js = js.clone();
        tokio::spawn(async move { publish_many(&js, "jobs.n", TOTAL as usize, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await })
    };
    // Kill points spread over the run, shifted by a clock-derived offset.
    let jitter = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64 % 10_000).unwrap_or(0);
    for point in [15_000 + jitter, 40_000 + jitter, 70_000 + jitter] {
        eventually(WAIT, "progress before the next kill", || async { (count(&js, "DONE").await >= point).then_some(()) }).await;
        let dir = host.kill().await;
        host = Host::start_in(dir, &config).await;
    }
    within(WAIT, "the publisher", publisher).await.expect("publisher task");
    eventually(WAIT, "every message handled", || async { (count(&js, "DONE").await >= TOTAL).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    assert_eq!(count(&js, "JOBS").await, 0, "nothing left in the work queue");
    assert_eq!(count(&js, "DONE").await, TOTAL, "the deduplicated output has each message exactly once");
    host.stop().await;

    let seen = within(WAIT, "the watcher", seen).await.expect("watcher task");
    let handled: u64 = seen.values().map(|&n| u64::from(n)).sum();
    let missing = (0..TOTAL).filter(|n| !seen.contains_key(n)).count();
    let duplicates = handled.saturating_sub(seen.len() as u64);
    eprintln!("crash test: {TOTAL} messages, 3 kills, {missing} lost, {duplicates} duplicate handlings");
    assert_eq!(missing, 0, "every message handled at least once");
    assert!(duplicates <= 3 * MAX_ACK_PENDING, "duplicates ({duplicates}) exceed the in-flight window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_rides_out_a_nats_server_restart() {
    const HALF: usize = 10_000;
    let mut nats = NatsServer::start();
    let config = faulty_jobs(nats.url(), "config = { publish = [\"done.x\"] }", "concurrency = 4\nack_wait = \"3s\"");
    let host = Host::start(&config).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    publish_many(&js, "jobs.n", HALF, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await;
    eventually(WAIT, "some progress", || async { (count(&js, "DONE").await >= 2_000).then_some(()) }).await;
    nats.restart();
    // The test's own client reconnects too; publish the second half once it has.
    eventually(WAIT, "the server back", || async { js.get_stream("JOBS").await.ok().map(|_| ()) }).await;
    publish_many(&js, "jobs.n", HALF, |i| format!(r#"{{"n":{}}}"#, HALF + i).into_bytes()).await;

    eventually(WAIT, "every message handled", || async { (count(&js, "DONE").await >= 2 * HALF as u64).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    assert_eq!(count(&js, "DONE").await, 2 * HALF as u64, "nothing lost, nothing doubled");
    let (status, output) = host.stop().await;
    assert!(status.success());
    assert!(output.contains("nats: disconnected") && output.contains("nats: connected"), "the log tells: {output}");
}

#[tokio::test]
async fn a_deleted_consumer_is_created_again() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_jobs(nats.url(), "config = { publish = [\"done.x\"] }", "")).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    publish_many(&js, "jobs.n", 10, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await;
    eventually(WAIT, "the first ten", || async { (count(&js, "DONE").await == 10).then_some(()) }).await;
    js.get_stream("JOBS").await.expect("stream").delete_consumer("jobs").await.expect("delete consumer");
    publish_many(&js, "jobs.n", 10, |i| format!(r#"{{"n":{}}}"#, 10 + i).into_bytes()).await;
    eventually(WAIT, "the next ten, through a new consumer", || async { (count(&js, "DONE").await == 20).then_some(()) }).await;
    let (_, output) = host.stop().await;
    assert!(output.contains("re-opening"), "the log says what happened:\n{output}");
}
