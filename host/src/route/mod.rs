//! Routes: subjects or a JetStream consumer mapped onto a plugin, and the drivers
//! that feed them messages.
//!
//! One message travels one way: a driver (core or JetStream) receives it, and
//! [`pipeline`] takes it through the gates, the plugin call ([`dispatch`]) and
//! its verdict to settlement, whose back-end is the driver's `settle`.

mod convert;
mod core;
pub mod dispatch;
mod jetstream;
mod lanes;
mod pipeline;

pub use convert::header_map as convert_headers;

use std::sync::Arc;

use async_nats::jetstream::Context as JetStream;
use tokio_util::sync::CancellationToken;

use crate::broker::StreamIndex;
use crate::config::RouteConfig;
use crate::plugin::Pool;
use crate::policy::{Backoff, Breaker, DeadLetters, RateLimit};
use crate::telemetry::Metrics;
use crate::workers::Workers;

/// A running route: its config, its plugin's instances, and its policies.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub config: RouteConfig,
    pub pool: Arc<Pool>,
    pub backoff: Backoff,
    pub rate_limit: Option<RateLimit>,
    pub breaker: Option<Breaker>,
    /// JetStream: deliveries an open breaker spent, per stream sequence.
    breaker_naks: jetstream::BreakerNaks,
    /// JetStream: messages received and not yet started, kept alive.
    held: jetstream::Held,
    /// JetStream: failed messages whose dead letter could not be stored yet.
    owed: jetstream::OwedDeadLetters,
}

/// Where verdicts go: the shared NATS handles and counters.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub client: async_nats::Client,
    pub js: JetStream,
    pub dead_letters: DeadLetters,
    pub streams: Arc<StreamIndex>,
    pub metrics: Arc<Metrics>,
    /// How long setting up a consumer may be retried (`nats.startup_timeout`).
    pub startup_timeout: std::time::Duration,
}

impl Route {
    pub fn new(config: RouteConfig, pool: Arc<Pool>) -> Self {
        let name = config.name.get_ref().clone();
        Self {
            backoff: Backoff::new(&config.retry),
            rate_limit: config.rate_limit.as_ref().map(RateLimit::new),
            breaker: config.breaker.as_ref().map(|b| Breaker::new(&name, b)),
            breaker_naks: jetstream::BreakerNaks::default(),
            held: jetstream::Held::default(),
            owed: jetstream::OwedDeadLetters::default(),
            name,
            config,
            pool,
        }
    }

    pub fn describe(&self) -> String {
        match &self.config.stream {
            Some(stream) => format!(
                "jetstream {}/{} (filter: {})",
                stream.get_ref(),
                self.config.durable_name(),
                if self.config.subjects.is_empty() { "all".into() } else { self.config.subjects.join(", ") }
            ),
            None => match &self.config.queue {
                Some(queue) => format!("core {} (queue {queue})", self.config.subjects.join(", ")),
                None => format!("core {}", self.config.subjects.join(", ")),
            },
        }
    }

    /// Subscribe or bind the consumer, then run the route's workers until `cancel`.
    /// Returns once setup is done; the workers are spawned into `workers`.
    pub async fn start(self: Arc<Self>, out: Outputs, cancel: CancellationToken, workers: &mut Workers) -> anyhow::Result<()> {
        if self.config.stream.is_some() {
            jetstream::start(self, out, cancel, workers).await
        } else {
            core::start(self, out, cancel, workers).await
        }
    }
}
