//! The default of every optional key of runtime.toml (docs/CONFIG.md lists
//! them), one function each so serde and the `Default` impls share them.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;

pub fn client_name() -> String {
    "switchyard".into()
}
pub fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}
pub fn startup_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn subscription_capacity() -> usize {
    2 * 1024 * 1024
}
pub fn embedded_port() -> u16 {
    4222
}
pub fn embedded_data_dir() -> PathBuf {
    ".switchyard/nats".into()
}
pub fn shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn cache_dir() -> PathBuf {
    ".switchyard/cache".into()
}
pub fn dlq_stream() -> String {
    "SWITCHYARD_DLQ".into()
}
pub fn dlq_subject_prefix() -> String {
    "switchyard.dlq".into()
}
pub fn dlq_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
pub fn replicas() -> usize {
    1
}
pub fn kv_history() -> i64 {
    1
}
pub fn max_compile_time() -> Duration {
    Duration::from_secs(60)
}

pub fn max_compile_memory() -> ByteSize {
    ByteSize::gib(2)
}

pub fn max_module_size() -> ByteSize {
    ByteSize::mib(64)
}

/// No `path`: a plugin with `source` gets one from the host; one with neither
/// is reported by validation.
pub fn no_path() -> toml::Spanned<PathBuf> {
    toml::Spanned::new(0..0, PathBuf::new())
}
pub fn plugin_memory() -> ByteSize {
    ByteSize::mib(64)
}
pub fn plugin_timeout() -> Duration {
    Duration::from_secs(5)
}
pub fn concurrency() -> usize {
    4
}
pub fn max_deliver() -> i64 {
    5
}
pub fn ack_wait() -> Duration {
    Duration::from_secs(30)
}
pub fn batch() -> usize {
    1000
}
pub fn max_ack_pending() -> i64 {
    10_000
}
pub fn admin_listen() -> super::Listen {
    super::Listen::On(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
}
pub fn consumer_info_interval() -> Duration {
    Duration::from_secs(5)
}
pub fn service_name() -> String {
    "switchyard".into()
}
pub fn sample_ratio() -> f64 {
    1.0
}
pub fn otlp_batch_delay() -> Duration {
    Duration::from_secs(5)
}
pub fn control_subject() -> String {
    "switchyard.control".into()
}
pub fn watch() -> bool {
    true
}
pub fn rollout_messages() -> u32 {
    20
}
pub fn rollout_failure_rate() -> f64 {
    0.5
}
pub fn canary_steps() -> Vec<u32> {
    vec![1, 10, 50, 100]
}
pub fn canary_step_for() -> Duration {
    Duration::from_secs(60)
}
pub fn canary_step_messages() -> u32 {
    100
}
pub fn canary_failure_rate_increase() -> f64 {
    0.05
}
pub fn canary_latency_ratio() -> f64 {
    2.0
}
pub fn shadow_sample() -> f64 {
    1.0
}
pub fn shadow_concurrency() -> u32 {
    2
}
pub fn shadow_keep_diffs() -> u32 {
    20
}
pub fn core_attempts() -> u32 {
    3
}
pub fn core_max_elapsed() -> Duration {
    Duration::from_secs(60)
}
pub fn multiplier() -> f64 {
    2.0
}
pub fn rate_per() -> Duration {
    Duration::from_secs(1)
}
pub fn rate_max_keys() -> usize {
    10_000
}
pub fn rate_max_wait() -> Duration {
    Duration::from_secs(1)
}
pub fn breaker_consecutive() -> u32 {
    5
}
pub fn breaker_window() -> Duration {
    Duration::from_secs(30)
}
pub fn breaker_min_calls() -> u32 {
    20
}
pub fn breaker_open_for() -> Duration {
    Duration::from_secs(10)
}
pub fn breaker_probes() -> u32 {
    1
}
