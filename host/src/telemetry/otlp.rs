//! Exporting the message spans to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf), when `[telemetry.otlp] endpoint` is set. The spans are built
//! from [`MessageTrace`] as finished span data, with the ids the host already
//! put on the wire, and handed to the SDK's batch processor: a bounded queue
//! drained by its own thread, so a slow or absent collector costs the message
//! path one queue push, and drops spans rather than memory.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanProcessor};

use super::Outcome;
use super::trace::MessageTrace;
use crate::config::OtlpConfig;

/// What the span says about the message, beside its ids.
#[derive(Debug)]
pub struct SpanFacts<'a> {
    pub route: &'a str,
    pub plugin: &'a str,
    pub version: &'a str,
    pub subject: &'a str,
    pub stream_sequence: Option<u64>,
    pub attempt: u64,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub struct SpanExporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
    sample_ratio: f64,
}

impl SpanExporter {
    /// The exporter to `config.endpoint` (the collector's base URL; spans go
    /// to `<endpoint>/v1/traces`, as with `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub async fn start(config: &OtlpConfig) -> anyhow::Result<SpanExporter> {
        let endpoint = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
        let (service, delay, sample_ratio) = (config.service_name.clone(), config.batch_delay, config.sample_ratio);
        // The HTTP client is a blocking one (the processor exports from its own
        // thread); it must be made off the async runtime.
        tokio::task::spawn_blocking(move || {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(&endpoint)
                .with_timeout(Duration::from_secs(10))
                .build()
                .with_context(|| format!("[telemetry.otlp] endpoint `{endpoint}`"))?;
            let batch = BatchConfigBuilder::default().with_scheduled_delay(delay).build();
            let mut processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
            processor.set_resource(&Resource::builder().with_service_name(service).build());
            let scope = InstrumentationScope::builder("switchyard").with_version(env!("CARGO_PKG_VERSION")).build();
            Ok(SpanExporter { processor, scope, sample_ratio })
        })
        .await
        .context("starting the OTLP exporter")?
    }

    /// The share of the traces the host starts that are exported.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// Queue the finished span of one message.
    pub fn export(&self, trace: &MessageTrace, facts: SpanFacts<'_>) {
        let flags = TraceFlags::new(trace.flags);
        if !flags.is_sampled() {
            return;
        }
        let state = trace.state.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
        let mut attributes = vec![
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", facts.subject.to_owned()),
            KeyValue::new("switchyard.route", facts.route.to_owned()),
            KeyValue::new("switchyard.plugin", facts.plugin.to_owned()),
            KeyValue::new("switchyard.plugin.version", facts.version.to_owned()),
            KeyValue::new("switchyard.attempt", facts.attempt as i64),
            KeyValue::new("switchyard.outcome", facts.outcome.label()),
        ];
        if let Some(sequence) = facts.stream_sequence {
            attributes.push(KeyValue::new("switchyard.stream_sequence", sequence as i64));
        }
        let failed = matches!(facts.outcome, Outcome::DeadLetter | Outcome::PluginError | Outcome::Reject);
        let span = SpanData {
            span_context: SpanContext::new(TraceId::from_bytes(trace.trace_id.0), SpanId::from_bytes(trace.span_id), flags, false, state),
            parent_span_id: trace.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: trace.parent.is_some(),
            span_kind: SpanKind::Consumer,
            name: Cow::Owned(format!("process {}", facts.route)),
            start_time: trace.started.unwrap_or_else(SystemTime::now),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: if failed { Status::error(facts.outcome.label()) } else { Status::Unset },
            instrumentation_scope: self.scope.clone(),
        };
        self.processor.on_end(span);
    }

    /// Send what is queued (bounded by the processor's own timeout).
    pub async fn shutdown(self: std::sync::Arc<Self>) {
        let done = tokio::task::spawn_blocking(move || self.processor.shutdown());
        match tokio::time::timeout(Duration::from_secs(10), done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!("exporting the last spans: {err}"),
            _ => tracing::warn!("exporting the last spans took over 10s"),
        }
    }
}
