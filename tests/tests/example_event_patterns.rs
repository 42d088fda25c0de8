//! examples/event-patterns end to end, on its own runtime.toml: a query answered over
//! request/reply with a reply envelope (and refused with a service error), commands on JetStream
//! turned into events that fan out to two subscribers, a failing command retried then
//! dead-lettered on `errors.dead_letter.*`, a malformed one rejected. Breaker and rate limit are
//! configured but not exercised (the failures here stay below the breaker's threshold).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{Value, json};
use switchyard_tests::examples::{self, header, json, next_n, sample, stored_header};
use switchyard_tests::js::{count, messages, pending, quiet};
use switchyard_tests::{NatsServer, eventually, within};

const EXAMPLE: &str = "event-patterns";
const WAIT: Duration = Duration::from_secs(20);
const PROCESS: &str = "orders.payments.payment.process";

async fn publish(js: &jetstream::Context, file: &str) {
    js.publish(PROCESS, sample(EXAMPLE, file).into()).await.expect("publish").await.expect("stored");
}

async fn drained(js: &jetstream::Context) {
    for (stream, consumer) in [("ORDER_COMMANDS", "process-payments"), ("ORDER_EVENTS", "receipts"), ("ORDER_EVENTS", "audit")] {
        eventually(WAIT, &format!("`{consumer}` to have nothing pending"), || async {
            (pending(js, stream, consumer).await == (0, 0)).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_query_is_answered_over_request_reply() {
    let checked = examples::check(EXAMPLE, "runtime.toml");
    assert!(checked.contains("ok (3 plugin(s), 4 route(s), 2 stream(s))"), "{checked}");
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;

    let ask = client.request("orders.payments.fee.quote", sample(EXAMPLE, "quote-fee.json").into());
    let answer = within(WAIT, "the quote", ask).await.expect("reply");
    assert_eq!(header(&answer, "content-type"), "application/json");
    let reply = json(&answer.payload);
    assert_eq!(reply["type"], "reply");
    assert!(reply["id"].as_str().is_some_and(|id| id.starts_with("rpl_")), "{reply}");
    assert_eq!(reply["data"], json!({"amount_cents": 1250, "currency": "EUR", "fee_cents": 67, "total_cents": 1317}));
    assert_eq!(
        reply["metadata"],
        json!({"schema_version": "1.0.0", "correlation_id": "corr_checkout_42", "causation_id": "qry_01HV8AF8G9H1J2"})
    );

    // A query of a schema this handler does not read: the requester hears why, at once.
    let ask = client.request("orders.payments.fee.quote", sample(EXAMPLE, "quote-fee-v2.json").into());
    let refused = within(WAIT, "the refusal", ask).await.expect("reply");
    assert_eq!(header(&refused, "Nats-Service-Error"), "schema version 2.0.0 is not supported (this handler reads 1.x)");
    assert!(refused.payload.is_empty());
    let js = jetstream::new(client.clone());
    assert_eq!(count(&js, "ORDER_COMMANDS").await + count(&js, "ORDER_EVENTS").await, 0, "queries are in no stream");
    host.stop().await;
}

#[tokio::test]
async fn commands_become_events_that_fan_out_to_each_subscriber() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut receipts = client.subscribe("notifications.>").await.expect("subscribe");
    let mut audit = client.subscribe("audit.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    publish(&js, "process-payment.json").await;
    publish(&js, "process-payment-declined.json").await;
    let records = next_n(&mut audit, 2, WAIT, "two audit records").await;
    let receipt = next_n(&mut receipts, 1, WAIT, "the receipt").await;
    drained(&js).await;

    // The command stream is a work queue: both commands taken. The events stay in theirs.
    assert_eq!(count(&js, "ORDER_COMMANDS").await, 0);
    let events = messages(&js, "ORDER_EVENTS").await;
    let by_subject = |subject: &str| -> Value {
        json(&events.iter().find(|m| m.subject.as_str() == subject).unwrap_or_else(|| panic!("no {subject}")).payload)
    };
    let processed = by_subject("orders.payments.payment.processed");
    assert_eq!(processed["type"], "event");
    assert_eq!(processed["data"]["order_id"], "ord_42");
    assert_eq!((processed["data"]["fee_cents"].as_u64(), processed["data"]["currency"].as_str()), (Some(67), Some("EUR")));
    assert_eq!(processed["metadata"]["causation_id"], "cmd_01HV8A1B2C3D4E");
    assert_eq!(processed["metadata"]["correlation_id"], "corr_checkout_42");
    let declined = by_subject("orders.payments.payment.declined");
    assert_eq!(declined["data"], json!({"order_id": "ord_43", "amount_cents": 9900, "currency": "USD", "reason": "card declined"}));
    assert_eq!(declined["metadata"]["causation_id"], "cmd_01HV8A5F6G7H8J");
    assert_eq!(stored_header(&events[0], "Nats-Msg-Id").split(':').next(), Some("ORDER_COMMANDS"), "deduped on redelivery");

    // Fan-out: `audit` hears both events, `receipts` (filter *.*.*.processed) only the processed one.
    let mut audited: Vec<(String, Value)> = records.iter().map(|m| (m.subject.to_string(), json(&m.payload))).collect();
    audited.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(audited[0].0, "audit.orders.payments.payment.declined");
    assert_eq!(audited[1].0, "audit.orders.payments.payment.processed");
    assert_eq!(audited[1].1["event_id"], processed["id"]);
    assert_eq!(audited[1].1["correlation_id"], "corr_checkout_42");
    assert_eq!(audited[1].1["causation_id"], "cmd_01HV8A1B2C3D4E");
    assert_eq!(audited[1].1["stream"], "ORDER_EVENTS");
    assert_eq!(receipt[0].subject.as_str(), "notifications.email.receipt.send");
    let command = json(&receipt[0].payload);
    assert_eq!(command["type"], "command");
    assert_eq!(
        command["data"],
        json!({"order_id": "ord_42", "payment_id": processed["data"]["payment_id"], "template": "payment-receipt", "amount": "12.50 EUR"})
    );
    assert_eq!(command["metadata"]["causation_id"], processed["id"], "the receipt names the event that caused it");
    assert_eq!(command["metadata"]["correlation_id"], "corr_checkout_42", "one conversation from command to receipt");
    assert!(quiet(&mut receipts, Duration::from_millis(200)).await.is_empty(), "no receipt for a declined payment");
    host.stop().await;
}

#[tokio::test]
async fn a_failing_command_is_retried_then_dead_lettered_and_a_malformed_one_rejected() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let js = jetstream::new(nats.client().await);

    let started = Instant::now();
    publish(&js, "process-payment-gateway-down.json").await;
    publish(&js, "process-payment-not-a-command.json").await;
    eventually(WAIT, "two dead letters", || async { (count(&js, "DEAD_LETTERS").await >= 2).then_some(()) }).await;
    let elapsed = started.elapsed();
    drained(&js).await;

    let letters = messages(&js, "DEAD_LETTERS").await;
    assert_eq!(letters.len(), 2);
    let by_sequence = |seq: &str| letters.iter().find(|m| stored_header(m, "Switchyard-Stream-Sequence") == seq).expect("letter");
    let exhausted = by_sequence("1");
    assert_eq!(exhausted.subject.as_str(), "errors.dead_letter.process-payments", "the seed's dead-letter subject");
    assert_eq!(&exhausted.payload[..], sample(EXAMPLE, "process-payment-gateway-down.json").as_bytes());
    assert_eq!(stored_header(exhausted, "Switchyard-Delivery-Count"), "3");
    assert_eq!(stored_header(exhausted, "Switchyard-Reason"), "max_deliver (3) reached: payment gateway unavailable (simulated)");
    assert!(elapsed >= Duration::from_millis(1000), "naks of ~500ms and ~1s between the attempts, took {elapsed:?}");
    let malformed = by_sequence("2");
    assert_eq!(stored_header(malformed, "Switchyard-Delivery-Count"), "1");
    assert_eq!(stored_header(malformed, "Switchyard-Reason"), "expected a command envelope, found an event");
    assert_eq!(count(&js, "ORDER_EVENTS").await, 0, "no event for a failed command");
    host.stop().await;
}
