//! Delivery policies wrapped around a plugin call.

pub mod dead_letter;
pub mod retry;

pub use dead_letter::{DeadLetter, DeadLetters};
pub use retry::Backoff;
