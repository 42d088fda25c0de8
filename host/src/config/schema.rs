//! The typed schema of `runtime.toml`.
//!
//! Every struct denies unknown keys so a typo is an error, not a silently ignored
//! setting. Durations are humantime strings ("30s"), sizes are byte-size strings
//! ("64MiB"), both parsed by the helpers in `units.rs`. Names that other sections
//! refer to (plugins, streams) are kept with their source span so validation can
//! point at the exact line and column.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;

use super::defaults;
pub use super::observability::*;
pub use super::rollout::{RolloutConfig, Strategy};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub nats: NatsConfig,
    #[serde(default)]
    pub host: HostConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
    /// Key-value buckets plugins may use (`[plugins.NAME] kv`).
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    /// Plugins by name; routes refer to them by that name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// How to reach NATS. Without `url` the host starts its own nats-server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// One or more server URLs: a string, comma separated
    /// (`"nats://a:4222,nats://b:4222"`), or an array of strings.
    pub url: Option<ServerList>,
    #[serde(default = "defaults::client_name")]
    pub name: String,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Path to a `.creds` file (JWT + nkey seed).
    pub credentials: Option<PathBuf>,
    /// An nkey seed ("SU…").
    pub nkey: Option<String>,
    pub tls: Option<TlsConfig>,
    /// Reconnect attempts before giving up; absent = forever.
    pub max_reconnects: Option<usize>,
    /// How long the host keeps trying, at start, to reach NATS and set up its
    /// streams and consumers (a server still starting, a cluster without a
    /// JetStream leader yet) before it exits.
    #[serde(default = "defaults::startup_timeout", deserialize_with = "super::units::duration")]
    pub startup_timeout: Duration,
    #[serde(default = "defaults::connect_timeout", deserialize_with = "super::units::duration")]
    pub connect_timeout: Duration,
    /// Capacity of each subscription's buffer, in messages. Large so bursts are
    /// not dropped (async-nats's 65,536 default drops silently under load).
    #[serde(default = "defaults::subscription_capacity")]
    pub subscription_capacity: usize,
    #[serde(default)]
    pub embedded: EmbeddedConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) to trust, PEM.
    pub ca: Option<PathBuf>,
    /// Client certificate, PEM (with `key`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Require TLS even if the server does not announce it.
    #[serde(default)]
    pub required: bool,
}

/// The nats-server the host starts when `nats.url` is absent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Path to the binary; default: `$NATS_SERVER_BIN`, then `nats-server` on PATH.
    pub binary: Option<PathBuf>,
    /// Client port on 127.0.0.1; 0 picks a free one.
    #[serde(default = "defaults::embedded_port")]
    pub port: u16,
    /// JetStream storage directory, relative to the config file.
    #[serde(default = "defaults::embedded_data_dir")]
    pub data_dir: PathBuf,
}

/// Host-wide settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// How long shutdown waits for in-flight messages before giving up.
    #[serde(default = "defaults::shutdown_timeout", deserialize_with = "super::units::duration")]
    pub shutdown_timeout: Duration,
    /// Where precompiled plugin artifacts are cached, relative to the config file.
    #[serde(default = "defaults::cache_dir")]
    pub cache_dir: PathBuf,
    /// The host answers `<control_subject>.status` and `<control_subject>.reload`.
    #[serde(default = "defaults::control_subject")]
    pub control_subject: String,
    /// Watch runtime.toml and the plugin files, and reload when they change.
    #[serde(default = "defaults::watch")]
    pub watch: bool,
    /// Who may send control requests (`[host.control]`).
    #[serde(default)]
    pub control: ControlConfig,
    /// A plugin still compiling after this long is refused (its compiler is
    /// stopped); its routes do not start, the rest of the host serves.
    #[serde(default = "defaults::max_compile_time", deserialize_with = "super::units::duration")]
    pub max_compile_time: Duration,
    /// Memory the compiler of one plugin may use before it is stopped.
    #[serde(default = "defaults::max_compile_memory", deserialize_with = "super::units::byte_size")]
    pub max_compile_memory: ByteSize,
    /// Larger plugin files are refused before compiling.
    #[serde(default = "defaults::max_module_size", deserialize_with = "super::units::byte_size")]
    pub max_module_size: ByteSize,
}

/// `[host.control]`: with `allowed_keys`, every control request must be signed
/// by one of these nkey public keys (`reload::signature`), else it is refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// nkey public keys (user `U…` or account `A…`); empty = requests are not checked.
    #[serde(default)]
    pub allowed_keys: Vec<String>,
}

/// Where rejected and exhausted messages go: a JetStream stream the host creates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    #[serde(default = "defaults::dlq_stream")]
    pub stream: String,
    /// Dead letters are published to `<subject_prefix>.<route>`.
    #[serde(default = "defaults::dlq_subject_prefix")]
    pub subject_prefix: String,
    #[serde(default = "defaults::dlq_max_age", deserialize_with = "super::units::duration")]
    pub max_age: Duration,
    #[serde(default)]
    pub storage: Storage,
    /// Copies kept on a NATS cluster; use the data streams' replicas, so dead
    /// letters survive a node loss as the messages do.
    #[serde(default = "defaults::replicas")]
    pub replicas: usize,
    /// Apply differences between this section and an existing dead-letter
    /// stream where NATS can do so without losing data; otherwise they are a
    /// startup error.
    #[serde(default)]
    pub update: bool,
}

/// A JetStream stream the host creates when it is missing. An existing one must
/// match (see `update`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: Spanned<String>,
    pub subjects: Vec<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub storage: Storage,
    /// Zero = unlimited.
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub max_age: Option<Duration>,
    pub max_msgs: Option<i64>,
    #[serde(default, deserialize_with = "super::units::option_byte_size")]
    pub max_bytes: Option<ByteSize>,
    #[serde(default = "defaults::replicas")]
    pub replicas: usize,
    /// Window in which `Nats-Msg-Id` duplicates are dropped.
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub duplicate_window: Option<Duration>,
    /// When the stream exists with other settings: apply those NATS can change
    /// without losing data (more subjects, replicas, higher limits) and log
    /// each, instead of refusing to start.
    #[serde(default)]
    pub update: bool,
}

/// A JetStream key-value bucket, created when missing and, like a stream,
/// never silently rewritten when it exists with other settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub name: Spanned<String>,
    /// How long a value lives after it was written; absent = forever.
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub ttl: Option<Duration>,
    /// Values kept per key (1–64).
    #[serde(default = "defaults::kv_history")]
    pub history: i64,
    #[serde(default = "defaults::replicas")]
    pub replicas: usize,
    #[serde(default)]
    pub storage: Storage,
    /// The largest value the bucket takes; absent = the server's limit.
    #[serde(default, deserialize_with = "super::units::option_byte_size")]
    pub max_value_size: Option<ByteSize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    #[default]
    Limits,
    Interest,
    Workqueue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// A wasm module and the sandbox it runs in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` file, relative to the config file. With `source`, the host
    /// sets it to where it keeps its copy of the object (under `cache_dir`).
    #[serde(default = "defaults::no_path")]
    pub path: Spanned<PathBuf>,
    /// Where the module comes from instead of `path`: `"object:BUCKET/NAME"`,
    /// an object in a JetStream object store, fetched at start and on every
    /// change of the object (`switchyard deploy` puts it there).
    pub source: Option<Spanned<ObjectSource>>,
    /// Linear memory cap per instance.
    #[serde(default = "defaults::plugin_memory", deserialize_with = "super::units::byte_size")]
    pub memory: ByteSize,
    /// Wall-clock limit of one call (enforced by epoch interruption).
    #[serde(default = "defaults::plugin_timeout", deserialize_with = "super::units::duration")]
    pub timeout: Duration,
    /// Optional instruction budget per call (wasmtime fuel).
    pub fuel: Option<u64>,
    /// Whether messages share instances (`pooled`) or each gets a fresh one.
    #[serde(default)]
    pub isolation: Isolation,
    /// Subject patterns the plugin may publish to (NATS wildcards). Empty = none.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Key-value buckets (`[[buckets]]`) the plugin may read and write. Empty = none.
    #[serde(default)]
    pub kv: Vec<Spanned<String>>,
    /// Subject patterns (NATS wildcards) the plugin may send requests to. Empty = none.
    #[serde(default)]
    pub request: Vec<String>,
    /// Environment variables visible to the plugin (nothing else is).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Passed to the plugin's `init` (as MessagePack); the plugin may refuse it.
    #[serde(default)]
    pub config: toml::Table,
    /// How a new version of this plugin proves itself after a hot reload.
    #[serde(default)]
    pub rollout: RolloutConfig,
}

/// A plugin module kept in a JetStream object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSource {
    pub bucket: String,
    pub object: String,
}

impl ObjectSource {
    /// Where the host keeps its copy of the object, under `cache_dir`.
    pub fn local_path(&self, cache_dir: &std::path::Path) -> PathBuf {
        cache_dir.join("objects").join(&self.bucket).join(format!("{}.wasm", self.object))
    }
}

impl std::fmt::Display for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object:{}/{}", self.bucket, self.object)
    }
}

impl std::str::FromStr for ObjectSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("`{text}` is not a plugin source like \"object:BUCKET/NAME\"");
        let rest = text.strip_prefix("object:").ok_or_else(usage)?;
        let (bucket, object) = rest.split_once('/').ok_or_else(usage)?;
        let valid = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid(bucket) || !valid(object) {
            return Err(format!("`{text}`: the bucket and object names may hold letters, digits, `-` and `_` only"));
        }
        Ok(ObjectSource { bucket: bucket.to_owned(), object: object.to_owned() })
    }
}

impl<'de> Deserialize<'de> for ObjectSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How a plugin's instances are shared between messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Instances are reused: state a handler leaves in memory is seen by later
    /// messages. About a microsecond per call.
    #[default]
    Pooled,
    /// Every message gets a new instance (its `init` runs again): nothing
    /// survives from one message to the next. A few microseconds more per
    /// message, thanks to the pooling allocator and copy-on-write memory images.
    Fresh,
}

/// A route: subjects (core) or a stream consumer (JetStream) → a plugin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: Spanned<String>,
    /// Name of a `[plugins.NAME]` entry.
    pub plugin: Spanned<String>,
    /// Core: the subjects to subscribe to. JetStream: consumer filter subjects
    /// (empty = the whole stream).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Core only: queue group, so several hosts share the load.
    pub queue: Option<String>,
    /// Present = a JetStream route on this stream, which must be declared in
    /// `[[streams]]` (so the host can check the filter subjects against it).
    pub stream: Option<Spanned<String>>,
    /// Durable consumer name; default: the route name.
    pub durable: Option<String>,
    /// Present = a timer route: the plugin is called every this long with a
    /// tick message (one host of a fleet per tick).
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub every: Option<Duration>,
    /// Present = a timer route on a cron schedule (UTC; five fields, or six
    /// with seconds first), instead of `every`.
    #[serde(default, deserialize_with = "super::units::option_cron")]
    pub cron: Option<croner::Cron>,
    /// Messages handled at once (and instances kept) for this route.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub retry: RetryConfig,
    /// JetStream: deliveries before the message is dead-lettered.
    #[serde(default = "defaults::max_deliver")]
    pub max_deliver: i64,
    /// JetStream: time the server waits for an ack before redelivering.
    #[serde(default = "defaults::ack_wait", deserialize_with = "super::units::duration")]
    pub ack_wait: Duration,
    /// JetStream: messages requested per pull.
    #[serde(default = "defaults::batch")]
    pub batch: usize,
    /// JetStream: unacknowledged messages the server lets the consumer hold.
    #[serde(default = "defaults::max_ack_pending")]
    pub max_ack_pending: i64,
    /// JetStream: wait for the server to confirm each ack (slower, exact).
    #[serde(default)]
    pub double_ack: bool,
    /// JetStream: when the durable consumer exists with other settings, update
    /// it to these instead of refusing to start.
    #[serde(default)]
    pub update_consumer: bool,
    /// Limit the rate at which messages are handled.
    pub rate_limit: Option<RateLimitConfig>,
    /// Stop calling a failing plugin for a while.
    pub breaker: Option<BreakerConfig>,
    /// Handle the messages of one key in order (different keys in parallel).
    pub order_by: Option<KeySource>,
}

/// Backoff between attempts of a failing message: an explicit schedule
/// (`delays`) or an exponential one (`initial`, `multiplier`, `max`, `jitter`).
/// Neither given: `["1s", "5s", "30s"]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before attempt 2, 3, …; the last one repeats.
    #[serde(default, deserialize_with = "super::units::option_duration_list")]
    pub delays: Option<Vec<Duration>>,
    /// Exponential backoff: the first delay.
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub initial: Option<Duration>,
    /// Exponential backoff: each delay is the previous one times this.
    #[serde(default = "defaults::multiplier")]
    pub multiplier: f64,
    /// Exponential backoff: the longest delay.
    #[serde(default, deserialize_with = "super::units::option_duration")]
    pub max: Option<Duration>,
    /// Random spread, 0.0–1.0: a delay d becomes uniform in [d·(1−j), d·(1+j)],
    /// so failing messages do not all come back at once.
    #[serde(default)]
    pub jitter: f64,
    /// Core routes: attempts in process before the message is dead-lettered.
    #[serde(default = "defaults::core_attempts")]
    pub attempts: u32,
    /// Core routes: give up retrying once this much time has passed since the
    /// first attempt, even with attempts left.
    #[serde(default = "defaults::core_max_elapsed", deserialize_with = "super::units::duration")]
    pub max_elapsed: Duration,
}

/// Where a per-message key comes from (rate-limit keys, ordering keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KeySource {
    /// The n-th token of the subject, 1-based: `{ subject_token = 2 }` of
    /// `orders.eu.created` is `eu`.
    SubjectToken(usize),
    /// A header's value: `{ header = "X-Tenant" }`.
    Header(String),
}

/// A token-bucket rate limit on a route (governor).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages allowed per `per`.
    pub rate: u32,
    #[serde(default = "defaults::rate_per", deserialize_with = "super::units::duration")]
    pub per: Duration,
    /// Messages allowed at once after a quiet spell; default: `rate`.
    pub burst: Option<u32>,
    /// Limit each key separately instead of the whole route.
    pub key: Option<KeySource>,
    /// Keys remembered at most; beyond that, new keys share one bucket.
    #[serde(default = "defaults::rate_max_keys")]
    pub max_keys: usize,
    /// Core routes: how long a message may wait for a permit before it is shed.
    #[serde(default = "defaults::rate_max_wait", deserialize_with = "super::units::duration")]
    pub max_wait: Duration,
}

/// A circuit breaker on a route: stop calling a plugin (and the dependency behind
/// it) while it fails, then probe.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Open after this many failures in a row.
    #[serde(default = "defaults::breaker_consecutive")]
    pub consecutive_failures: u32,
    /// Also open when this share of the calls in `window` failed (0.0–1.0)…
    pub failure_rate: Option<f64>,
    #[serde(default = "defaults::breaker_window", deserialize_with = "super::units::duration")]
    pub window: Duration,
    /// …and there were at least this many calls in it.
    #[serde(default = "defaults::breaker_min_calls")]
    pub min_calls: u32,
    /// How long the breaker stays open before it lets probes through.
    #[serde(default = "defaults::breaker_open_for", deserialize_with = "super::units::duration")]
    pub open_for: Duration,
    /// Messages let through while half-open; all succeed → closed, one fails → open.
    #[serde(default = "defaults::breaker_probes")]
    pub probes: u32,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: None,
            name: defaults::client_name(),
            token: None,
            user: None,
            password: None,
            credentials: None,
            nkey: None,
            tls: None,
            max_reconnects: None,
            startup_timeout: defaults::startup_timeout(),
            connect_timeout: defaults::connect_timeout(),
            subscription_capacity: defaults::subscription_capacity(),
            embedded: EmbeddedConfig::default(),
        }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { binary: None, port: defaults::embedded_port(), data_dir: defaults::embedded_data_dir() }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: defaults::shutdown_timeout(),
            cache_dir: defaults::cache_dir(),
            control_subject: defaults::control_subject(),
            watch: defaults::watch(),
            control: ControlConfig::default(),
            max_compile_time: defaults::max_compile_time(),
            max_compile_memory: defaults::max_compile_memory(),
            max_module_size: defaults::max_module_size(),
        }
    }
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            stream: defaults::dlq_stream(),
            subject_prefix: defaults::dlq_subject_prefix(),
            max_age: defaults::dlq_max_age(),
            storage: Storage::File,
            replicas: defaults::replicas(),
            update: false,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            delays: None,
            initial: None,
            multiplier: defaults::multiplier(),
            max: None,
            jitter: 0.0,
            attempts: defaults::core_attempts(),
            max_elapsed: defaults::core_max_elapsed(),
        }
    }
}

/// NATS server URLs, written as one comma-separated string or an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList(pub Vec<String>);

impl ServerList {
    /// Split a comma-separated list (`--nats-url`, or the string form in the file).
    pub fn parse(text: &str) -> Self {
        Self(text.split(',').map(|url| url.trim().to_owned()).collect())
    }
}

impl std::fmt::Display for ServerList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl<'de> Deserialize<'de> for ServerList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a URL string (comma separated for several) or an array of URL strings")]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Form::deserialize(d)? {
            Form::One(text) => Self::parse(&text),
            Form::Many(urls) => Self(urls),
        })
    }
}

impl RouteConfig {
    /// A timer route: `every` or `cron` is set.
    pub fn is_timer(&self) -> bool {
        self.every.is_some() || self.cron.is_some()
    }

    /// The durable consumer name of a JetStream route.
    pub fn durable_name(&self) -> &str {
        self.durable.as_deref().unwrap_or(self.name.get_ref())
    }
}
