//! Checks of `[admin]` and `[telemetry]`: what the types alone do not catch.

use super::super::problems::Problems;
use super::super::schema::{AdminConfig, TelemetryConfig};

pub(super) fn check(admin: &AdminConfig, telemetry: &TelemetryConfig, problems: &mut Problems) {
    if admin.consumer_info_interval.is_zero() {
        problems.push_at(&["admin", "consumer_info_interval"], "`admin.consumer_info_interval` must be greater than zero");
    }
    let Some(otlp) = &telemetry.otlp else { return };
    let endpoint = otlp.endpoint.as_str();
    let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if !scheme_ok || endpoint.parse::<axum::http::Uri>().map_or(true, |uri| uri.host().is_none()) {
        problems.push_at(
            &["telemetry", "otlp", "endpoint"],
            format!("`telemetry.otlp.endpoint` must be an http(s) URL like \"http://localhost:4318\", got `{endpoint}`"),
        );
    }
    if otlp.service_name.is_empty() {
        problems.push_at(&["telemetry", "otlp", "service_name"], "`telemetry.otlp.service_name` must not be empty");
    }
    if !(0.0..=1.0).contains(&otlp.sample_ratio) {
        problems.push_at(
            &["telemetry", "otlp", "sample_ratio"],
            format!("`telemetry.otlp.sample_ratio` must be between 0 and 1, got {}", otlp.sample_ratio),
        );
    }
    if otlp.batch_delay.is_zero() {
        problems.push_at(&["telemetry", "otlp", "batch_delay"], "`telemetry.otlp.batch_delay` must be greater than zero");
    }
}
