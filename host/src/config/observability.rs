//! `[admin]` and `[telemetry]`: how the host is watched — the admin listener,
//! the log format, where spans are exported.

use std::time::Duration;

use serde::Deserialize;

use super::defaults;

/// `[admin]`: the HTTP listener for `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `"host:port"` (port 0 picks a free one), or `"off"`.
    #[serde(default = "defaults::admin_listen")]
    pub listen: Listen,
    /// How often each JetStream route's consumer info (pending, ack pending,
    /// redelivered) is read for the metrics.
    #[serde(default = "defaults::consumer_info_interval", deserialize_with = "super::units::duration")]
    pub consumer_info_interval: Duration,
}

/// Where the admin listener listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(std::net::SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::On).map_err(|_| format!("`{text}` is not an address like \"127.0.0.1:9464\" (or \"off\")"))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `[telemetry]`: how the host writes its logs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `"text"` (the default) or `"json"`: one JSON object per line.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Export a span per message to an OpenTelemetry collector.
    pub otlp: Option<OtlpConfig>,
}

/// `[telemetry.otlp]`: where spans go, over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL, e.g. `"http://localhost:4318"`; spans are
    /// posted to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// How long spans wait in the queue before a batch is sent.
    #[serde(default = "defaults::otlp_batch_delay", deserialize_with = "super::units::duration")]
    pub batch_delay: Duration,
    /// The share (0–1) of the traces the host starts that are exported; a
    /// trace that arrives keeps its sender's decision.
    #[serde(default = "defaults::sample_ratio")]
    pub sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: defaults::admin_listen(), consumer_info_interval: defaults::consumer_info_interval() }
    }
}
