//! `audit-log`: the other subscriber events fan out to. It takes every event of the stream, of any
//! type and schema, and publishes one audit record on `audit.<the event's subject>`: what happened,
//! in which conversation, caused by what, and where it is stored (stream and sequence, for replay).
//!
//! It only needs the envelope, so it accepts any valid one; a payload that is not an envelope is
//! rejected (dead-lettered with the reason).

use serde::Serialize;
use serde_json::Value;
use switchyard_sdk::prelude::*;

#[derive(Debug, Serialize)]
struct AuditRecord<'a> {
    event_id: &'a str,
    kind: EnvelopeKind,
    subject: &'a str,
    occurred_at: Timestamp,
    schema_version: Option<SchemaVersion>,
    correlation_id: &'a str,
    causation_id: Option<&'a str>,
    stream: Option<&'a str>,
    sequence: Option<u64>,
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let envelope = Expect::any().message::<Value>(msg)?;
    let record = AuditRecord {
        event_id: &envelope.id,
        kind: envelope.kind,
        subject: &msg.subject,
        occurred_at: envelope.timestamp,
        schema_version: envelope.metadata.schema_version,
        correlation_id: envelope.correlation_id(),
        causation_id: envelope.metadata.causation_id.as_deref(),
        stream: msg.delivery.as_ref().map(|d| d.stream.as_str()),
        sequence: msg.delivery.as_ref().map(|d| d.stream_sequence),
    };
    let subject = format!("audit.{}", msg.subject);
    ctx.publish_json(&subject, &record).or_reject_with(format!("publishing to `{subject}`"))?;
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    #[test]
    fn every_envelope_gets_a_record() {
        let event = json!({"type": "event", "id": "evt_9", "timestamp": "2024-03-20T10:00:01Z", "data": {"anything": 1},
                           "metadata": {"schema_version": "1.0.0", "correlation_id": "corr_1", "causation_id": "cmd_7"}});
        let msg = Message::builder("orders.payments.payment.declined").json(&event).jetstream("ORDER_EVENTS", 4).build();
        let handled = MockHost::new().allow("audit.>").call(handle, &msg);
        let [sent] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        assert_eq!(sent.subject, "audit.orders.payments.payment.declined");
        let record: Value = serde_json::from_slice(&sent.payload).expect("json");
        assert_eq!(
            record,
            json!({"event_id": "evt_9", "kind": "event", "subject": "orders.payments.payment.declined",
                   "occurred_at": "2024-03-20T10:00:01Z", "schema_version": "1.0.0", "correlation_id": "corr_1",
                   "causation_id": "cmd_7", "stream": "ORDER_EVENTS", "sequence": 4})
        );
    }

    #[test]
    fn what_is_not_an_envelope_is_rejected() {
        let handled = MockHost::new().allow("audit.>").call(handle, &Message::builder("orders.x.y.processed").text("hello").build());
        assert_eq!(handled.outcome, Outcome::reject("not an envelope: expected value at line 1 column 1"));
    }
}
