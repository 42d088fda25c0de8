//! `notifier`: one of the subscribers an event fans out to. For every `…payment.processed` event it
//! issues the command `notifications.email.receipt.send` (a receipt for the customer), in the same
//! conversation (correlation id) and caused by the event.
//!
//! It reads schema 1.x and ignores `data` fields it does not know: a producer on 1.1 may add
//! fields without breaking this reader, which is what a minor version promises.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

const ACCEPTS: Expect = Expect::event().schema_major(1).prefixed_ids();
const SCHEMA: SchemaVersion = SchemaVersion::new(1, 0, 0);

/// The fields of `PaymentProcessed` this reader needs (no `deny_unknown_fields`: see above).
#[derive(Debug, Deserialize)]
struct PaymentProcessed {
    order_id: String,
    payment_id: String,
    amount_cents: u64,
    currency: String,
}

#[derive(Debug, Serialize)]
struct SendReceipt<'a> {
    order_id: &'a str,
    payment_id: &'a str,
    template: &'static str,
    amount: String,
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let event = ACCEPTS.message::<PaymentProcessed>(msg)?;
    let payment = &event.data;
    let receipt = SendReceipt {
        order_id: &payment.order_id,
        payment_id: &payment.payment_id,
        template: "payment-receipt",
        amount: format!("{}.{:02} {}", payment.amount_cents / 100, payment.amount_cents % 100, payment.currency),
    };
    let at = Timestamp::of_delivery(msg).unwrap_or(event.timestamp);
    let command = event.follow_up(EnvelopeKind::Command, "receipt", at, receipt).with_schema_version(SCHEMA);
    ctx.publish_json("notifications.email.receipt.send", &command).or_reject_with("publishing the receipt")?;
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    #[test]
    fn a_processed_payment_sends_a_receipt() {
        let event = json!({"type": "event", "id": "evt_9", "timestamp": "2024-03-20T10:00:01Z",
                           "data": {"order_id": "ord_42", "payment_id": "pay_1", "amount_cents": 1250, "currency": "EUR",
                                    "fee_cents": 67, "added_in_1_1": true},
                           "metadata": {"schema_version": "1.1.0", "correlation_id": "corr_checkout_42", "causation_id": "cmd_7"}});
        let msg = Message::builder("orders.payments.payment.processed").json(&event).build();
        let handled = MockHost::new().allow("notifications.email.receipt.send").call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let [sent] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        let command: Value = serde_json::from_slice(&sent.payload).expect("json");
        assert_eq!(command["type"], "command");
        assert_eq!(
            command["data"],
            json!({"order_id": "ord_42", "payment_id": "pay_1", "template": "payment-receipt", "amount": "12.50 EUR"})
        );
        assert_eq!(command["metadata"]["correlation_id"], "corr_checkout_42");
        assert_eq!(command["metadata"]["causation_id"], "evt_9");
    }

    #[test]
    fn another_major_version_is_rejected() {
        let event = json!({"type": "event", "id": "evt_9", "timestamp": "2024-03-20T10:00:01Z", "data": {},
                           "metadata": {"schema_version": "2.0.0"}});
        let handled = MockHost::new().allow(">").call(handle, &Message::builder("x").json(&event).build());
        assert_eq!(handled.outcome, Outcome::reject("schema version 2.0.0 is not supported (this handler reads 1.x)"));
    }
}
