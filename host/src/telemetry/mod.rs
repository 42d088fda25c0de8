//! Logs, metrics and probes.

pub mod health;
pub mod latency;
pub mod logging;
pub mod metrics;
pub mod otlp;
mod process;
pub mod trace;

pub use health::Health;
pub use metrics::{InFlight, Metrics, Outcome, ReloadResult, RolloutMetrics, RouteMetrics};
