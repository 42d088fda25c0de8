//! The subcommands other than `run`: tools for operators and plugin authors.

pub mod check;
pub mod client;
pub mod control;
pub mod dlq;
pub mod invoke;
mod show;
