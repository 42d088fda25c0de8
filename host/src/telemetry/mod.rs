//! Logs and counters.

pub mod logging;
pub mod metrics;

pub use metrics::Metrics;
