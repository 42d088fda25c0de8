//! Delivery policies under faults: the backoff schedule, a dependency that is
//! down for a while, handlers longer than ack_wait, rate limits, circuit
//! breakers and ordering — each against a real nats-server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::{count, create_stream, drained, header, messages, publish_many};
use switchyard_tests::{Host, NatsServer, eventually};

const WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// (when, subject, attempt) of each plugin call, from `log_calls` lines.
fn calls(host: &Host) -> Vec<(Instant, String, u64)> {
    host.lines()
        .into_iter()
        .filter_map(|(at, line)| {
            let rest = line.split("faulty: call ").nth(1)?;
            let mut words = rest.split_whitespace();
            let subject = words.next()?.to_owned();
            let attempt = words.nth(1)?.parse().ok()?;
            Some((at, subject, attempt))
        })
        .collect()
}

#[tokio::test]
async fn the_backoff_schedule_is_observed_then_one_dead_letter() {
    let nats = NatsServer::start();
    let route = "max_deliver = 4\nretry = { delays = [\"300ms\", \"600ms\", \"1200ms\"] }";
    let host = Host::start(&faulty_jobs(nats.url(), "", route)).await;
    let js = jetstream::new(nats.client().await);

    js.publish("jobs.a", r#"{"action":"retry","log_calls":true}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "the dead letter", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;

    let calls = calls(&host);
    let attempts: Vec<u64> = calls.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4], "delivered 1..max_deliver, once each");
    for (pair, expected) in calls.windows(2).zip([300, 600, 1200]) {
        let gap = pair[1].0.duration_since(pair[0].0);
        let expected = Duration::from_millis(expected);
        assert!(gap >= expected && gap < expected + Duration::from_millis(400), "gap {gap:?}, expected {expected:?}");
    }
    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    assert_eq!(header(&letters[0], "Switchyard-Delivery-Count"), "4");
    host.stop().await;
}

#[tokio::test]
async fn a_dependency_down_for_three_seconds_loses_nothing() {
    let nats = NatsServer::start();
    let route = "max_deliver = 6\nretry = { initial = \"500ms\", multiplier = 2.0, max = \"2s\", jitter = 0.1 }";
    let host = Host::start(&faulty_jobs(nats.url(), "", route)).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    let back_at = now_ms() + 3000;
    publish_many(&js, "jobs.n", 20, |i| format!(r#"{{"n":{i},"fail_until_unix_ms":{back_at},"publish":["done.n"]}}"#).into_bytes()).await;
    eventually(WAIT, "20 successes", || async { (count(&js, "DONE").await == 20).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "max_deliver was not exhausted");
    let done = messages(&js, "DONE").await;
    assert!(done.iter().all(|m| header(m, "faulty-attempt").parse::<u64>().unwrap_or(0) >= 2), "each failed first");
    host.stop().await;
}

#[tokio::test]
async fn a_handler_running_three_ack_waits_is_delivered_once() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_jobs(nats.url(), "", "ack_wait = \"1s\"")).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    js.publish("jobs.slow", r#"{"sleep_ms":3000,"publish":["done.slow"]}"#.into()).await.expect("publish").await.expect("ack");
    eventually(WAIT, "the slow job's publish", || async { (count(&js, "DONE").await == 1).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    let done = messages(&js, "DONE").await;
    assert_eq!(header(&done[0], "faulty-attempt"), "1");
    let info = js.get_stream("JOBS").await.expect("stream").consumer_info("jobs").await.expect("info").clone();
    assert_eq!(info.num_redelivered, 0, "in-progress acks kept it from being redelivered");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_rate_limit_holds_without_spending_deliveries() {
    let nats = NatsServer::start();
    let route = "concurrency = 4\nmax_deliver = 2\nrate_limit = { rate = 100, burst = 10, key = { subject_token = 2 } }";
    let host = Host::start(&faulty_jobs(nats.url(), "", route)).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    publish_many(&js, "jobs.k1", 2000, |i| format!(r#"{{"n":{i},"publish":["done.k1"]}}"#).into_bytes()).await;
    eventually(WAIT, "2,000 handled", || async { (count(&js, "DONE").await == 2000).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "nothing reached max_deliver");

    let done = messages(&js, "DONE").await;
    assert!(done.iter().all(|m| header(m, "faulty-attempt") == "1"), "no delivery spent on waiting");
    // After the burst of 10, permits come at 100/s.
    let span = (done[1999].time - done[10].time).as_seconds_f64();
    let rate = 1989.0 / span;
    eprintln!("rate limit 100/s on one key, 2,000 messages: observed {rate:.1}/s");
    assert!(rate <= 105.0, "observed {rate:.1}/s");
    assert!(rate >= 80.0, "the limit should not slow the route far below its rate: {rate:.1}/s");
    host.stop().await;
}

#[tokio::test]
async fn an_open_breaker_lets_only_probes_through_and_the_backlog_drains() {
    let nats = NatsServer::start();
    let route = "concurrency = 1\nmax_deliver = 5\nretry = { delays = [\"100ms\"] }\n\
                 breaker = { consecutive_failures = 3, open_for = \"1s\", probes = 1 }";
    let host = Host::start(&faulty_jobs(nats.url(), "", route)).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    let back_at = now_ms() + 2500;
    publish_many(&js, "jobs.b", 30, |i| {
        format!(r#"{{"n":{i},"fail_until_unix_ms":{back_at},"publish":["done.b"],"log_calls":true}}"#).into_bytes()
    })
    .await;
    eventually(WAIT, "30 successes", || async { (count(&js, "DONE").await == 30).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "no dead letter caused by the breaker");

    // Walk the log: no call while open; at most `probes` calls while half-open.
    #[derive(PartialEq, Debug)]
    enum Phase {
        Closed,
        Open,
        HalfOpen(u32),
    }
    let mut phase = Phase::Closed;
    let mut opened = 0;
    for (_, line) in host.lines() {
        if line.contains("breaker open") {
            phase = Phase::Open;
            opened += 1;
        } else if line.contains("breaker half-open") {
            phase = Phase::HalfOpen(0);
        } else if line.contains("breaker closed") {
            phase = Phase::Closed;
        } else if line.contains("faulty: call") {
            match &mut phase {
                Phase::Open => panic!("a call while the breaker was open: {line}"),
                Phase::HalfOpen(n) => {
                    *n += 1;
                    assert!(*n <= 1, "more calls than probes while half-open");
                }
                Phase::Closed => {}
            }
        }
    }
    assert!(opened >= 1, "the breaker opened");
    assert_eq!(phase, Phase::Closed, "and closed again");
    host.stop().await;
}

/// Publish 10 keys × 500 messages and return how long the route took.
async fn ordered_run(concurrency: usize) -> Duration {
    let nats = NatsServer::start();
    let route = format!("concurrency = {concurrency}\norder_by = {{ subject_token = 2 }}\nmax_ack_pending = 20000");
    let host = Host::start(&faulty_jobs(nats.url(), "", &route)).await;
    let js = jetstream::new(nats.client().await);
    create_stream(&js, "DONE", &["done.>"]).await;

    let started = Instant::now();
    let mut acks = Vec::new();
    for seq in 0..500 {
        for key in 0..10 {
            let payload = format!(r#"{{"seq":{seq},"sleep_ms":1,"publish":["done.k{key}"]}}"#);
            acks.push(js.publish(format!("jobs.k{key}"), payload.into()).await.expect("publish"));
        }
    }
    for ack in acks {
        ack.await.expect("ack");
    }
    eventually(WAIT, "5,000 handled", || async { (count(&js, "DONE").await == 5000).then_some(()) }).await;
    let elapsed = started.elapsed();

    let mut last = std::collections::HashMap::new();
    for msg in messages(&js, "DONE").await {
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        let seq = body["seq"].as_i64().expect("seq");
        let previous = last.insert(msg.subject.to_string(), seq).unwrap_or(-1);
        assert_eq!(seq, previous + 1, "{}: handled out of order", msg.subject);
    }
    assert_eq!(last.len(), 10);
    host.stop().await;
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_handled_in_order_and_keys_in_parallel() {
    let serial = ordered_run(1).await;
    let parallel = ordered_run(8).await;
    eprintln!("ordering, 10 keys x 500: concurrency 1 took {serial:?}, concurrency 8 took {parallel:?}");
    assert!(parallel * 2 < serial, "concurrency 8 ({parallel:?}) should beat concurrency 1 ({serial:?})");
}
