//! Delivery policies wrapped around a plugin call.

pub(crate) mod breaker;
pub(crate) mod dead_letter;
mod key;
pub(crate) mod rate_limit;
pub(crate) mod retry;

pub(crate) use breaker::{Breaker, Permit};
pub(crate) use dead_letter::{DeadLetter, DeadLetters};
pub(crate) use rate_limit::RateLimit;
pub(crate) use retry::Backoff;
