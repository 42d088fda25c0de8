//! Delivery policies wrapped around a plugin call.

pub mod breaker;
pub mod dead_letter;
mod key;
pub mod rate_limit;
pub mod retry;

pub use breaker::{Breaker, Permit};
pub use dead_letter::{DeadLetter, DeadLetters};
pub use rate_limit::RateLimit;
pub use retry::Backoff;
