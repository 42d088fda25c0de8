//! The `quote` query: what a payment of an amount would cost in fees. Answered over
//! request/reply with a `reply` envelope; a bad query is rejected, which the host answers with a
//! `Nats-Service-Error` reply naming the problem.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use crate::{SCHEMA, Settings};

const ACCEPTS: Expect = Expect::query().schema_major(1).prefixed_ids();

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuoteFee {
    pub amount_cents: u64,
    pub currency: String,
}

#[derive(Debug, Serialize)]
struct FeeQuote<'a> {
    amount_cents: u64,
    currency: &'a str,
    fee_cents: u64,
    total_cents: u64,
}

pub(crate) fn quote(msg: &Message, settings: &Settings) -> Result<Outcome, Stop> {
    if msg.reply.is_none() {
        return Err(Stop::reject("a query needs a reply subject: send it as a request"));
    }
    let query = ACCEPTS.message::<QuoteFee>(msg)?;
    let mut v = Validator::new();
    v.min("data.amount_cents", query.data.amount_cents, 1);
    settings.check_currency(&mut v, "data.currency", &query.data.currency);
    v.finish()?;

    let fee_cents = settings.fee_cents(query.data.amount_cents);
    let data = FeeQuote {
        amount_cents: query.data.amount_cents,
        currency: &query.data.currency,
        fee_cents,
        total_cents: query.data.amount_cents.saturating_add(fee_cents),
    };
    let reply = query.reply(Timestamp::now(), data).with_schema_version(SCHEMA);
    Ok(Outcome::reply_json(&reply)?)
}
