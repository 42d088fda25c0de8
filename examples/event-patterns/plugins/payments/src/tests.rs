//! The payments handlers under the SDK's mock host.

use serde_json::{Value, json};
use switchyard_sdk::testing::{Handled, MockHost};

use super::*;

fn host() -> MockHost {
    MockHost::new()
        .allow("orders.payments.payment.processed")
        .allow("orders.payments.payment.declined")
        .config(json!({"currencies": ["EUR", "USD"], "fee_percent": 2.9, "fee_fixed_cents": 30}))
        .init(init)
        .expect("config accepted")
}

fn command(card_token: &str) -> Message {
    Message::builder("orders.payments.payment.process")
        .json(&json!({"type": "command", "id": "cmd_7", "timestamp": "2024-03-20T10:00:00Z",
                      "data": {"order_id": "ord_42", "amount_cents": 1250, "currency": "EUR", "card_token": card_token},
                      "metadata": {"schema_version": "1.0.0", "correlation_id": "corr_checkout_42"}}))
        .jetstream("ORDER_COMMANDS", 3)
        .build()
}

fn only_publish(handled: &Handled) -> (String, Value) {
    let [publish] = handled.sent() else { panic!("one publish expected: {:?}", handled.publishes) };
    (publish.subject.clone(), serde_json::from_slice(&publish.payload).expect("json"))
}

#[test]
fn an_approved_payment_becomes_a_processed_event() {
    let handled = host().call(handle, &command("tok_visa"));
    assert_eq!(handled.outcome, Outcome::Ack);
    let (subject, event) = only_publish(&handled);
    assert_eq!(subject, "orders.payments.payment.processed");
    assert_eq!(event["type"], "event");
    assert!(event["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    assert_eq!(
        event["data"],
        json!({"order_id": "ord_42", "payment_id": switchyard_sdk::ids::derive("pay_", &["cmd_7"]), "amount_cents": 1250,
               "currency": "EUR", "fee_cents": 67})
    );
    assert_eq!(event["metadata"], json!({"schema_version": "1.0.0", "correlation_id": "corr_checkout_42", "causation_id": "cmd_7"}));
    assert_eq!(host().call(handle, &command("tok_visa")).sent(), handled.sent(), "a redelivery yields the same event");
}

#[test]
fn a_declined_card_is_an_event_and_a_down_gateway_a_retry() {
    let (subject, event) = only_publish(&host().call(handle, &command("tok_declined")));
    assert_eq!(subject, "orders.payments.payment.declined");
    assert_eq!(event["data"]["reason"], "card declined");
    let down = host().call(handle, &command("tok_gateway_down"));
    assert_eq!(down.outcome, Outcome::retry("payment gateway unavailable (simulated)"));
    assert!(down.sent().is_empty());
}

#[test]
fn invalid_commands_are_rejected() {
    let handled = host().call(handle, &command("4242424242424242"));
    assert_eq!(handled.outcome, Outcome::reject("message validation failed: `data.card_token` must be a card token (`tok_…`)"));
    let event = Message::builder("orders.payments.payment.process")
        .json(&json!({"type": "event", "id": "evt_1", "timestamp": "2024-03-20T10:00:00Z", "data": {}}))
        .build();
    assert_eq!(host().call(handle, &event).outcome, Outcome::reject("expected a command envelope, found an event"));
    let elsewhere = host().call(handle, &Message::builder("orders.payments.payment.refund").text("{}").build());
    assert_eq!(elsewhere.outcome, Outcome::reject("`orders.payments.payment.refund` is neither a payments command nor a query"));
}

#[test]
fn a_query_gets_a_reply_envelope() {
    let query = Message::builder("orders.payments.fee.quote")
        .json(&json!({"type": "query", "id": "qry_5", "timestamp": "2024-03-20T10:00:00Z",
                      "data": {"amount_cents": 1250, "currency": "EUR"}, "metadata": {"schema_version": "1.2.0"}}))
        .reply("_INBOX.1")
        .build();
    let handled = host().call(handle, &query);
    let Outcome::Reply { payload, .. } = &handled.outcome else { panic!("{:?}", handled.outcome) };
    let reply: Value = serde_json::from_slice(payload).expect("json");
    assert_eq!(reply["type"], "reply");
    assert_eq!(reply["data"], json!({"amount_cents": 1250, "currency": "EUR", "fee_cents": 67, "total_cents": 1317}));
    assert_eq!(reply["metadata"]["causation_id"], "qry_5");
    assert_eq!(reply["metadata"]["correlation_id"], "qry_5", "the query started the conversation");

    let no_reply = Message { reply: None, ..query.clone() };
    assert_eq!(host().call(handle, &no_reply).outcome, Outcome::reject("a query needs a reply subject: send it as a request"));
    let yen = Message::builder("orders.payments.fee.quote")
        .json(&json!({"type": "query", "id": "qry_6", "timestamp": "2024-03-20T10:00:00Z",
                      "data": {"amount_cents": 0, "currency": "JPY"}, "metadata": {"schema_version": "1.0.0"}}))
        .reply("_INBOX.2")
        .build();
    assert_eq!(
        host().call(handle, &yen).outcome,
        Outcome::reject(
            "message validation failed: `data.amount_cents` must be at least 1, found 0; \
             `data.currency` must be one of `EUR`, `USD`, found `JPY`"
        )
    );
}

#[test]
fn init_checks_the_fee() {
    let refused = MockHost::new().config(json!({"currencies": ["EUR"], "fee_percent": 120.0, "fee_fixed_cents": 0})).init(init);
    assert_eq!(refused.err().as_deref(), Some("`fee_percent` must be within 0..=100, found 120"));
}
