//! The subcommands other than `run`: tools for operators and plugin authors.

pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod control;
pub(crate) mod deploy;
pub(crate) mod dlq;
mod fleet;
pub(crate) mod invoke;
pub(crate) mod new;
mod show;
pub(crate) mod test;
pub(crate) mod top;
