//! JetStream routes end to end: throughput with nothing left pending, retries
//! with nak delays, dead letters with their headers, buffered publishes.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::configs;
use switchyard_tests::js::{count, create_stream, drained, header, messages, pending, publish_many, quiet};
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(20);

fn faulty_config(url: &str, route_extra: &str) -> String {
    configs::faulty_jobs(url, "", route_extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_are_each_handled_and_acked() {
    let nats = NatsServer::start();
    let rest = r#"[[streams]]
name = "ORDERS"
subjects = ["orders.>"]
retention = "workqueue"

[[routes]]
name = "orders"
plugin = "transform"
stream = "ORDERS"
concurrency = 4"#;
    let config = configs::transform(nats.url(), "processed", rest);
    let host = Host::start(&config).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "PROCESSED", &["processed.>"]).await;

    publish_many(&js, "orders.created", 10_000, |i| format!(r#"{{"n":{i},"name":"user{i}"}}"#).into_bytes()).await;
    eventually(Duration::from_secs(120), "10,000 processed messages", || async { (count(&js, "PROCESSED").await >= 10_000).then_some(()) })
        .await;
    drained(&js, "ORDERS", "orders").await;
    assert_eq!(count(&js, "ORDERS").await, 0, "acked work-queue messages are removed");
    assert_eq!(count(&js, "PROCESSED").await, 10_000, "each message forwarded exactly once");

    let all = messages(&js, "PROCESSED").await;
    let mut seen: Vec<u64> =
        all.iter().map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).expect("json")["n"].as_u64().expect("n")).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10_000).collect::<Vec<u64>>(), "every message handled, none twice");
    let first = &all[0];
    assert_eq!(header(first, "Nats-Msg-Id").split(':').count(), 3, "forwarded messages carry <stream>:<seq>:<n>");
    assert!(header(first, "Nats-Msg-Id").starts_with("ORDERS:"));

    let (status, _) = host.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn a_message_failing_twice_is_delivered_three_times_with_the_nak_delay() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_config(nats.url(), "max_deliver = 5\nretry = { delays = [\"400ms\"] }")).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    let started = Instant::now();
    js.publish("jobs.a", r#"{"fail_times":2,"publish":["done.a"]}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "the success publish", || async { (count(&js, "DONE").await == 1).then_some(()) }).await;
    let elapsed = started.elapsed();
    drained(&js, "JOBS", "jobs").await;

    let done = messages(&js, "DONE").await;
    assert_eq!(done.len(), 1, "publishes of failed attempts are dropped");
    assert_eq!(header(&done[0], "faulty-attempt"), "3", "succeeded on the third delivery");
    assert!(elapsed >= Duration::from_millis(800), "two naks of 400ms each, took only {elapsed:?}");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "nothing dead-lettered");
    host.stop().await;
}

#[tokio::test]
async fn rejected_and_exhausted_messages_are_dead_lettered_with_their_story() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_config(nats.url(), "max_deliver = 3\nretry = { delays = [\"100ms\"] }")).await;
    let js = jetstream::new(nats.client().await);

    js.publish("jobs.reject", r#"{"action":"reject"}"#.into()).await.expect("publish").await.expect("ack");
    js.publish("jobs.retry", r#"{"action":"retry"}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "two dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await == 2).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "JOBS").await, 0, "originals termed after the dead letter was stored");

    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    let rejected = letters.iter().find(|m| header(m, "Switchyard-Original-Subject") == "jobs.reject").expect("reject letter");
    assert_eq!(rejected.subject.as_str(), "switchyard.dlq.jobs");
    assert_eq!(&rejected.payload[..], br#"{"action":"reject"}"#, "payload intact");
    assert_eq!(header(rejected, "Switchyard-Route"), "jobs");
    assert_eq!(header(rejected, "Switchyard-Plugin"), "faulty");
    assert_eq!(header(rejected, "Switchyard-Plugin-Hash").len(), 12);
    assert_eq!(header(rejected, "Switchyard-Reason"), "rejected by request");
    assert_eq!(header(rejected, "Switchyard-Delivery-Count"), "1", "rejected on the first delivery, not retried");
    assert_eq!(header(rejected, "Switchyard-Stream"), "JOBS");
    assert_eq!(header(rejected, "Switchyard-Stream-Sequence"), "1");

    let exhausted = letters.iter().find(|m| header(m, "Switchyard-Original-Subject") == "jobs.retry").expect("retry letter");
    assert_eq!(header(exhausted, "Switchyard-Delivery-Count"), "3");
    assert_eq!(header(exhausted, "Switchyard-Stream-Sequence"), "2");
    let reason = header(exhausted, "Switchyard-Reason");
    assert!(reason.starts_with("max_deliver (3) reached"), "reason: {reason}");
    host.stop().await;
}

#[tokio::test]
async fn publishes_are_buffered_until_success_and_sent_once() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_config(nats.url(), "max_deliver = 3\nretry = { delays = [\"100ms\"] }")).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    // Always fails after publishing: nothing may come out.
    js.publish("jobs.x", r#"{"action":"retry","publish":["done.never"]}"#.into()).await.expect("publish").await.expect("ack");
    // Publishes, fails once, then succeeds: exactly one publish.
    js.publish("jobs.y", r#"{"fail_times":1,"publish":["done.once"]}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "the dead letter of the failing job", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;

    let done = messages(&js, "DONE").await;
    let subjects: Vec<&str> = done.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, vec!["done.once"], "only the success published, once");
    assert_eq!(header(&done[0], "Nats-Msg-Id"), "JOBS:2:0");
    host.stop().await;
}

#[tokio::test]
async fn a_publish_to_a_core_subject_with_subscribers_is_sent_once() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_config(nats.url(), "")).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    // No stream captures done.>: the publish is a core message to this subscriber.
    let mut watcher = client.subscribe("done.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    js.publish("jobs.core", r#"{"publish":["done.core"]}"#.into()).await.expect("publish").await.expect("ack");
    let msg = within(WAIT, "the forwarded core message", watcher.next()).await.expect("a message");
    assert_eq!(msg.subject.as_str(), "done.core");
    drained(&js, "JOBS", "jobs").await;
    assert!(quiet(&mut watcher, Duration::from_millis(500)).await.is_empty(), "sent once, not again on a redelivery");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0);
    host.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_flight() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_config(nats.url(), "")).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    js.publish("jobs.slow", r#"{"busy_ms":1500,"publish":["done.slow"]}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "the job to be in flight", || async { (pending(&js, "JOBS", "jobs").await == (0, 1)).then_some(()) }).await;
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    assert_eq!(count(&js, "DONE").await, 1, "the in-flight handler finished and published");
    // The server applies acks asynchronously, so wait for it; a lost ack would
    // never drain (the host is gone, nothing pulls the message again).
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "JOBS").await, 0, "the work-queue message is gone");
}
