//! Switchyard: maps NATS subjects, queue groups and JetStream consumers onto
//! sandboxed WebAssembly handlers, with the delivery policies around them.
//!
//! Public: what the binary, the bench and the end-to-end tests use; the rest is
//! the crate's own (see docs/ARCHITECTURE.md).

pub mod admin;
pub mod app;
pub mod broker;
pub mod cli;
mod commands;
pub mod config;
pub mod daemon;
pub mod plugin;
mod policy;
mod reload;
mod route;
/// How a route turns a NATS message into the plugin's, and how many it calls
/// together (the bench's baselines that call a plugin do as the host does).
pub use route::{MAX_TOGETHER, from_core, from_jetstream};
pub mod telemetry;
mod workers;
