//! Switchyard: maps NATS subjects, queue groups and JetStream consumers onto
//! sandboxed WebAssembly handlers, with the delivery policies around them.

pub mod app;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod plugin;
pub mod policy;
pub mod reload;
pub mod route;
pub mod telemetry;
pub mod workers;
