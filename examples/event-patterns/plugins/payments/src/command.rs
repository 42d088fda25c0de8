//! The `process` command: charge a card through the (simulated) gateway, then publish what
//! happened as an event.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use crate::{SCHEMA, Settings};

const ACCEPTS: Expect = Expect::command().schema_major(1).prefixed_ids();

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessPayment {
    pub order_id: String,
    pub amount_cents: u64,
    pub currency: String,
    pub card_token: String,
}

#[derive(Debug, Serialize)]
struct PaymentProcessed<'a> {
    order_id: &'a str,
    payment_id: String,
    amount_cents: u64,
    currency: &'a str,
    fee_cents: u64,
}

#[derive(Debug, Serialize)]
struct PaymentDeclined<'a> {
    order_id: &'a str,
    amount_cents: u64,
    currency: &'a str,
    reason: &'static str,
}

/// What the simulated gateway says about a card token.
enum Gateway {
    Approved,
    Declined,
    Unavailable,
}

fn gateway(card_token: &str) -> Gateway {
    match card_token {
        "tok_declined" => Gateway::Declined,
        "tok_gateway_down" => Gateway::Unavailable,
        _ => Gateway::Approved,
    }
}

pub(crate) fn process(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let command = ACCEPTS.message::<ProcessPayment>(msg)?;
    let payment = &command.data;
    let mut v = Validator::new();
    v.required("data.order_id", &payment.order_id).min("data.amount_cents", payment.amount_cents, 1);
    settings.check_currency(&mut v, "data.currency", &payment.currency);
    v.check("data.card_token", payment.card_token.starts_with("tok_"), || "must be a card token (`tok_…`)".to_owned());
    v.finish()?;

    // The stream's time: a redelivered command yields the same event, byte for byte.
    let at = Timestamp::of_delivery(msg).unwrap_or(command.timestamp);
    let subject = match gateway(&payment.card_token) {
        // Passing: the route naks with backoff, the breaker counts it, max_deliver dead-letters it.
        Gateway::Unavailable => return Err(Stop::retry("payment gateway unavailable (simulated)")),
        Gateway::Declined => {
            let data = PaymentDeclined {
                order_id: &payment.order_id,
                amount_cents: payment.amount_cents,
                currency: &payment.currency,
                reason: "card declined",
            };
            let event = command.follow_up(EnvelopeKind::Event, "declined", at, data).with_schema_version(SCHEMA);
            publish(ctx, "orders.payments.payment.declined", &event)?
        }
        Gateway::Approved => {
            let data = PaymentProcessed {
                order_id: &payment.order_id,
                payment_id: switchyard_sdk::ids::derive("pay_", &[command.id.as_str()]),
                amount_cents: payment.amount_cents,
                currency: &payment.currency,
                fee_cents: settings.fee_cents(payment.amount_cents),
            };
            let event = command.follow_up(EnvelopeKind::Event, "processed", at, data).with_schema_version(SCHEMA);
            publish(ctx, "orders.payments.payment.processed", &event)?
        }
    };
    ctx.info(format!("{} for order {}: {subject}", command.id, payment.order_id));
    Ok(Outcome::Ack)
}

/// Publish `event` to `subject`; returns the subject.
fn publish<'a, T: Serialize>(ctx: &mut Context, subject: &'a str, event: &Envelope<T>) -> Result<&'a str, Stop> {
    ctx.publish_json(subject, event).or_reject_with(format!("publishing to `{subject}`"))?;
    Ok(subject)
}
