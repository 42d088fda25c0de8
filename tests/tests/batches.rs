//! Batches across the plugin boundary (`switchyard_handle_batch`): a worker that
//! holds several messages hands them to the plugin in one call, and each is
//! still settled on its own — in arrival order, with its own publishes, and a
//! message that traps fails alone.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::admin::scrape;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::count;
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(30);

/// One worker on `core.>`: whatever arrives while it is busy waits in its
/// subscription and is taken together next. Failures are retried once, 50 ms
/// later, then dead-lettered.
const ROUTE: &str = r#"
[[routes]]
name = "core"
plugin = "faulty"
subjects = ["core.>"]
concurrency = 1
retry = { delays = ["50ms"], attempts = 2 }
"#;

/// A message that keeps the worker busy, then, once it is in the plugin, the
/// messages `bodies`: they wait in the subscription and are taken together.
async fn behind_a_slow_one(host: &Host, client: &async_nats::Client, bodies: &[String]) {
    client.publish("core.slow", r#"{"sleep_ms":1000}"#.into()).await.expect("publish");
    client.flush().await.expect("flush");
    eventually(WAIT, "the slow message in the plugin", || async {
        (scrape(host.admin_url()).await.value("switchyard_in_flight", &[("route", "core")]) == 1.0).then_some(())
    })
    .await;
    for body in bodies {
        client.publish("core.n", body.clone().into()).await.expect("publish");
    }
    client.flush().await.expect("flush");
}

/// The `n` of each message on `seen.>` until `expected` have come, in order.
async fn seen(sub: &mut async_nats::Subscriber, expected: usize) -> Vec<u64> {
    let mut order = Vec::new();
    while order.len() < expected {
        let msg = within(WAIT, "a handled message", sub.next()).await.expect("subscription open");
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        order.push(body["n"].as_u64().expect("n"));
    }
    order
}

#[tokio::test]
async fn a_batch_is_settled_message_by_message_in_order_and_a_trap_fails_alone() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let host = Host::start(&faulty_jobs(nats.url(), "", ROUTE)).await;
    let mut out = client.subscribe("seen.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let metric = |s: &switchyard_tests::admin::Scrape, name: &str| s.value(name, &[("route", "core")]);

    // Ten messages behind a slow one: one batch call, ten outcomes, in order.
    let good = |n: u64| format!(r#"{{"n":{n},"publish":["seen.x"]}}"#);
    behind_a_slow_one(&host, &client, &(0..10).map(good).collect::<Vec<_>>()).await;
    assert_eq!(seen(&mut out, 10).await, (0..10).collect::<Vec<_>>(), "published in arrival order");
    let s = scrape(host.admin_url()).await;
    assert_eq!(metric(&s, "switchyard_batch_calls_total"), 1.0, "the ten went in one call");
    assert_eq!(metric(&s, "switchyard_batched_messages_total"), 10.0);

    // The same with the sixth trapping: the batch call fails, and the messages
    // are called one by one: nine handled once each, in order, the trap
    // retried and dead-lettered. What the batch call buffered was never sent.
    let bodies: Vec<String> = (10..20).map(|n| if n == 15 { format!(r#"{{"n":{n},"action":"trap"}}"#) } else { good(n) }).collect();
    behind_a_slow_one(&host, &client, &bodies).await;
    let expected: Vec<u64> = (10..20).filter(|&n| n != 15).collect();
    assert_eq!(seen(&mut out, 9).await, expected, "each good message once, in order");
    eventually(WAIT, "the trapping message dead-lettered", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    // Nothing more arrives: no good message was handled twice.
    assert!(tokio::time::timeout(Duration::from_millis(500), out.next()).await.is_err(), "a message was published twice");

    let s = scrape(host.admin_url()).await;
    assert_eq!(metric(&s, "switchyard_batch_calls_total"), 2.0, "the second batch was called");
    assert_eq!(metric(&s, "switchyard_batched_messages_total"), 10.0, "and none of its outcomes kept");
    let outcome = |outcome: &str| s.value("switchyard_messages_total", &[("route", "core"), ("outcome", outcome)]);
    assert_eq!(outcome("ack"), 21.0, "2 slow ones and 19 good ones");
    assert_eq!(outcome("plugin_error"), 2.0, "the trap, on each of its two attempts");
    assert_eq!(outcome("dead_letter"), 1.0);
    assert_eq!(s.value("switchyard_plugin_traps_total", &[("plugin", "faulty"), ("kind", "trap")]), 2.0, "the batch's trap is not counted");
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}
