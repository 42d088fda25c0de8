//! Routes: subjects or a JetStream consumer mapped onto a plugin, and the drivers
//! that feed them messages.
//!
//! One message travels one way: a driver (core or JetStream) receives it, and
//! [`pipeline`] takes it through the gates, the plugin call ([`dispatch`]) and
//! its verdict to settlement, whose back-end is the driver's `settle`.

/// A log line about one message on one route: it carries the fields that
/// find every line of a message (route, subject, stream sequence, attempt and
/// trace id), then the caller's. Fields are only read when the line is logged.
macro_rules! message_event {
    ($level:ident, $route:expr, $msg:expr, $trace:expr, $($rest:tt)+) => {
        tracing::$level!(
            route = %$route.name,
            subject = %$msg.subject,
            stream_sequence = $msg.delivery.as_ref().map(|d| d.stream_sequence),
            attempt = $msg.attempt,
            trace_id = %$trace.trace_id,
            $($rest)+
        )
    };
}

mod convert;
mod core;
pub(crate) mod dispatch;
mod jetstream;
mod lanes;
mod pipeline;
mod timer;

pub(crate) use timer::TICK_PREFIX;

pub use convert::{from_core, from_jetstream};
pub(crate) use convert::{header_map as convert_headers, headers_of};
pub use pipeline::MAX_TOGETHER;

use std::sync::Arc;

use async_nats::jetstream::Context as JetStream;
use tokio_util::sync::CancellationToken;

use crate::broker::StreamIndex;
use crate::config::{Kind, RouteSpec};
use crate::plugin::Pool;
use crate::policy::{Backoff, Breaker, DeadLetters, RateLimit};
use crate::telemetry::otlp::SpanExporter;
use crate::telemetry::{Health, Metrics, RouteMetrics};
use crate::workers::Workers;

/// A running route: its spec, its plugin's instances, and its policies.
#[derive(Debug)]
pub(crate) struct Route {
    pub name: String,
    pub spec: RouteSpec,
    pub pool: Arc<Pool>,
    pub backoff: Backoff,
    pub rate_limit: Option<RateLimit>,
    pub breaker: Option<Breaker>,
    pub metrics: RouteMetrics,
}

/// Where verdicts go: the shared NATS handles, metrics and health.
#[derive(Debug, Clone)]
pub(crate) struct Outputs {
    pub client: async_nats::Client,
    /// JetStream acks go out through here, written together.
    pub acks: crate::broker::Acks,
    pub js: JetStream,
    pub dead_letters: DeadLetters,
    pub streams: Arc<StreamIndex>,
    pub metrics: Arc<Metrics>,
    /// Routes report here when they cannot serve (`/readyz`).
    pub health: Arc<Health>,
    /// Where message spans go, when `[telemetry.otlp]` is set.
    pub spans: Option<Arc<SpanExporter>>,
    /// How often JetStream routes read their consumer's info (`[admin]`).
    pub consumer_info_interval: std::time::Duration,
    /// How long setting up a consumer may be retried (`nats.startup_timeout`).
    pub startup_timeout: std::time::Duration,
}

impl Route {
    pub(crate) fn new(spec: RouteSpec, pool: Arc<Pool>, metrics: RouteMetrics) -> Self {
        Self {
            metrics,
            name: spec.name.clone(),
            backoff: Backoff::new(&spec.retry),
            rate_limit: spec.rate_limit.as_ref().map(RateLimit::new),
            breaker: spec.breaker.as_ref().map(|b| Breaker::new(&spec.name, b)),
            spec,
            pool,
        }
    }

    /// Subscribe or bind the consumer, then run the route's workers until `cancel`.
    /// Returns once setup is done; the workers are spawned into `workers`.
    pub(crate) async fn start(self: Arc<Self>, out: Outputs, cancel: CancellationToken, workers: &mut Workers) -> anyhow::Result<()> {
        match self.spec.kind.clone() {
            Kind::Core(core) => core::start(self, core, out, cancel, workers).await,
            Kind::JetStream(js) => jetstream::start(self, js, out, cancel, workers).await,
            Kind::Timer(timer) => timer::start(self, timer, out, cancel, workers).await,
        }
    }
}
