//! `payments`: the payments context of the `orders` domain. One plugin, two routes:
//!
//! - the **command** `orders.payments.payment.process` (a JetStream work queue: retried, dead-lettered,
//!   behind a circuit breaker) → the **event** `orders.payments.payment.processed`, or
//!   `orders.payments.payment.declined` when the card is declined (a business outcome, not an
//!   error);
//! - the **query** `orders.payments.fee.quote` (core request/reply) → a **reply** envelope with the
//!   fee.
//!
//! Everything in and out is an envelope of schema 1.x (`switchyard_sdk::Envelope`); follow-ups keep
//! the correlation id and name their cause. The payment gateway is simulated by the card token:
//! `tok_declined` is declined, `tok_gateway_down` fails as an unreachable gateway would (a retry),
//! any other `tok_…` is approved.
//!
//! ```toml
//! [plugins.payments.config]
//! currencies = ["EUR", "USD"]
//! fee_percent = 2.9        # of the amount, rounded up to the cent
//! fee_fixed_cents = 30
//! ```

mod command;
mod query;

use serde::Deserialize;
use switchyard_sdk::prelude::*;

/// The schema these handlers read and write.
pub const SCHEMA: SchemaVersion = SchemaVersion::new(1, 0, 0);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub currencies: Vec<String>,
    pub fee_percent: f64,
    pub fee_fixed_cents: u64,
}

impl Settings {
    /// The fee on `amount_cents`: the fixed part plus the percentage, rounded up to the cent.
    pub fn fee_cents(&self, amount_cents: u64) -> u64 {
        let variable = (amount_cents as f64 * self.fee_percent / 100.0).ceil() as u64;
        self.fee_fixed_cents.saturating_add(variable)
    }

    /// Check a currency against the configured ones.
    pub fn check_currency(&self, v: &mut Validator, field: &str, currency: &str) {
        let allowed: Vec<&str> = self.currencies.iter().map(String::as_str).collect();
        v.one_of(field, currency, &allowed);
    }
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.currencies.is_empty() {
        return Err("`currencies` must name at least one currency".to_owned());
    }
    if !(0.0..=100.0).contains(&settings.fee_percent) {
        return Err(format!("`fee_percent` must be within 0..=100, found {}", settings.fee_percent));
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    // <domain>.<context>.<entity>.<action>: the action says what to do.
    match msg.subject.split('.').collect::<Vec<_>>().as_slice() {
        ["orders", "payments", "payment", "process"] => command::process(msg, ctx, settings),
        ["orders", "payments", "fee", "quote"] => query::quote(msg, settings),
        _ => Err(Stop::reject(format!("`{}` is neither a payments command nor a query", msg.subject))),
    }
}

#[cfg(test)]
mod tests;
