//! The message envelope of event-driven systems: every event, command, query (and the reply to a
//! query) travels as
//!
//! ```json
//! {
//!   "type": "command",
//!   "id": "cmd_123",
//!   "timestamp": "2024-03-20T10:00:00Z",
//!   "data": { "order_id": "o-1", "amount_cents": 1250 },
//!   "metadata": { "schema_version": "1.0.0", "correlation_id": "corr_9", "causation_id": "evt_7" }
//! }
//! ```
//!
//! `metadata` holds three well-known keys and anything else the producer adds (kept in
//! [`Metadata::extra`]): `schema_version` (semantic versioning of the `data` schema: a handler
//! reads one major version), `correlation_id` (shared by every message of one conversation), and
//! `causation_id` (the id of the message that caused this one).
//!
//! [`Expect`] states what a handler accepts and parses in two steps — the envelope, then `data` as
//! the handler's own type — so every error says which part is wrong. Every [`EnvelopeError`] is
//! permanent: `?` in a handler returning `Result<Outcome, Stop>` rejects the message.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use switchyard_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Process { order_id: String }
//! #[derive(Serialize)]
//! struct Processed { order_id: String }
//!
//! const ACCEPTS: Expect = Expect::command().schema_major(1);
//!
//! #[handler]
//! fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
//!     let command = ACCEPTS.message::<Process>(msg)?;
//!     // Same id on every delivery of this command: downstream can dedupe on it.
//!     let event = command
//!         .follow_up(EnvelopeKind::Event, "processed", command.timestamp, Processed { order_id: command.data.order_id.clone() })
//!         .with_schema_version(SchemaVersion::new(1, 0, 0));
//!     ctx.publish_json("orders.payments.payment.processed", &event).or_retry()?;
//!     Ok(Outcome::Ack)
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use switchyard_abi::Message;

use crate::{PayloadError, Timestamp, Validate, ValidationError, Validator};

/// What a message is: something that happened, something to do, a question, or its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeKind {
    Event,
    Command,
    Query,
    /// The answer to a query (an addition to the three kinds: a reply needs a shape too).
    Reply,
}

impl EnvelopeKind {
    /// The conventional id prefix: `evt_`, `cmd_`, `qry_`, `rpl_`.
    pub const fn id_prefix(self) -> &'static str {
        match self {
            EnvelopeKind::Event => "evt_",
            EnvelopeKind::Command => "cmd_",
            EnvelopeKind::Query => "qry_",
            EnvelopeKind::Reply => "rpl_",
        }
    }

    /// `an event`, `a command`, …: for messages about a kind.
    pub const fn with_article(self) -> &'static str {
        match self {
            EnvelopeKind::Event => "an event",
            EnvelopeKind::Command => "a command",
            EnvelopeKind::Query => "a query",
            EnvelopeKind::Reply => "a reply",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::Event => "event",
            EnvelopeKind::Command => "command",
            EnvelopeKind::Query => "query",
            EnvelopeKind::Reply => "reply",
        }
    }

    /// An id with this kind's prefix, derived from `parts` (see [`crate::ids::derive`]).
    pub fn derive_id<S: AsRef<[u8]>>(self, parts: &[S]) -> String {
        crate::ids::derive(self.id_prefix(), parts)
    }
}

impl fmt::Display for EnvelopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `MAJOR.MINOR.PATCH` of a `data` schema. A new major version breaks readers; a new minor one
/// only adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl SchemaVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { major, minor, patch }
    }

    /// Parse `1.2.3` (three decimal numbers, no leading zeros, no pre-release or build suffix).
    pub fn parse(text: &str) -> Result<Self, String> {
        let numbers: Vec<&str> = text.split('.').collect();
        let number = |s: &str| -> Option<u64> {
            let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
            if canonical { s.parse().ok() } else { None }
        };
        match numbers.as_slice() {
            [a, b, c] => match (number(a), number(b), number(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Self { major, minor, patch }),
                _ => Err(format!("invalid schema version `{text}`: expected MAJOR.MINOR.PATCH, e.g. `1.0.0`")),
            },
            _ => Err(format!("invalid schema version `{text}`: expected MAJOR.MINOR.PATCH, e.g. `1.0.0`")),
        }
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        SchemaVersion::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The envelope's `metadata`: the well-known keys, and whatever else the producer put there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<SchemaVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An event, command, query or reply with its `data` as `T` (`serde_json::Value` when unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T = Value> {
    #[serde(rename = "type")]
    pub kind: EnvelopeKind,
    pub id: String,
    pub timestamp: Timestamp,
    pub data: T,
    #[serde(default)]
    pub metadata: Metadata,
}

impl<T> Envelope<T> {
    pub fn new(kind: EnvelopeKind, id: impl Into<String>, timestamp: Timestamp, data: T) -> Self {
        Envelope { kind, id: id.into(), timestamp, data, metadata: Metadata::default() }
    }

    pub fn with_schema_version(mut self, version: SchemaVersion) -> Self {
        self.metadata.schema_version = Some(version);
        self
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.metadata.correlation_id = Some(id.into());
        self
    }

    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.metadata.causation_id = Some(id.into());
        self
    }

    /// Add a free-form metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.extra.insert(key.into(), value.into());
        self
    }

    /// The conversation this message belongs to: its `correlation_id`, or its own id when it
    /// starts one.
    pub fn correlation_id(&self) -> &str {
        self.metadata.correlation_id.as_deref().unwrap_or(&self.id)
    }

    /// A message caused by this one: same correlation id, `causation_id` = this id, and an id of
    /// `kind` derived from this id and `purpose`, so a redelivery produces the same follow-up.
    pub fn follow_up<U>(&self, kind: EnvelopeKind, purpose: &str, timestamp: Timestamp, data: U) -> Envelope<U> {
        Envelope::new(kind, kind.derive_id(&[self.id.as_str(), purpose]), timestamp, data)
            .with_correlation_id(self.correlation_id())
            .with_causation_id(self.id.clone())
    }

    /// The reply to this query (or to any message answered over request/reply).
    pub fn reply<U>(&self, timestamp: Timestamp, data: U) -> Envelope<U> {
        self.follow_up(EnvelopeKind::Reply, "reply", timestamp, data)
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, PayloadError>
    where
        T: Serialize,
    {
        serde_json::to_vec(self).map_err(PayloadError::EncodeJson)
    }
}

/// Why a payload is not an acceptable envelope. All of them are permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an envelope: {0}")]
    Malformed(String),
    #[error("invalid envelope `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("expected {} envelope, found {}", .expected.with_article(), .found.with_article())]
    Kind { expected: EnvelopeKind, found: EnvelopeKind },
    #[error("envelope id `{id}` must start with `{prefix}`")]
    IdPrefix { id: String, prefix: &'static str },
    #[error("envelope has no `metadata.schema_version` (this handler reads {major}.x)")]
    SchemaMissing { major: u64 },
    #[error("schema version {found} is not supported (this handler reads {major}.x)")]
    SchemaUnsupported { found: SchemaVersion, major: u64 },
    #[error("envelope has no `metadata.correlation_id`")]
    CorrelationMissing,
    #[error("envelope `data` does not fit: {0}")]
    Data(String),
    #[error("{0}")]
    DataInvalid(ValidationError),
}

/// What a handler accepts. `Expect::any()` checks only the envelope itself; each builder call
/// adds a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    kind: Option<EnvelopeKind>,
    schema_major: Option<u64>,
    correlation_required: bool,
    prefixed_ids: bool,
}

/// Longest id accepted (ids often end up in subjects, headers and keys).
const MAX_ID_LEN: usize = 128;

impl Expect {
    /// Any kind, any schema.
    pub const fn any() -> Self {
        Expect { kind: None, schema_major: None, correlation_required: false, prefixed_ids: false }
    }

    pub const fn kind(kind: EnvelopeKind) -> Self {
        Expect { kind: Some(kind), ..Expect::any() }
    }

    pub const fn event() -> Self {
        Expect::kind(EnvelopeKind::Event)
    }

    pub const fn command() -> Self {
        Expect::kind(EnvelopeKind::Command)
    }

    pub const fn query() -> Self {
        Expect::kind(EnvelopeKind::Query)
    }

    pub const fn reply() -> Self {
        Expect::kind(EnvelopeKind::Reply)
    }

    /// Require `metadata.schema_version` with this major version.
    pub const fn schema_major(self, major: u64) -> Self {
        Expect { schema_major: Some(major), ..self }
    }

    /// Require `metadata.correlation_id`.
    pub const fn correlation_required(self) -> Self {
        Expect { correlation_required: true, ..self }
    }

    /// Require the id to carry its kind's prefix (`evt_`, `cmd_`, `qry_`, `rpl_`).
    pub const fn prefixed_ids(self) -> Self {
        Expect { prefixed_ids: true, ..self }
    }

    /// Parse `payload` as an envelope, check it, then read `data` as `T`.
    pub fn parse<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<Envelope<T>, EnvelopeError> {
        let envelope: Envelope<Value> = serde_json::from_slice(payload).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        self.check(&envelope)?;
        let Envelope { kind, id, timestamp, data, metadata } = envelope;
        let data = T::deserialize(data).map_err(|e| EnvelopeError::Data(e.to_string()))?;
        Ok(Envelope { kind, id, timestamp, data, metadata })
    }

    /// [`Expect::parse`], then `data`'s own checks (problems reported as `data.field`).
    pub fn parse_valid<T: DeserializeOwned + Validate>(&self, payload: &[u8]) -> Result<Envelope<T>, EnvelopeError> {
        let envelope = self.parse::<T>(payload)?;
        let mut v = Validator::new();
        v.nested("data", &envelope.data);
        v.finish().map_err(EnvelopeError::DataInvalid)?;
        Ok(envelope)
    }

    /// [`Expect::parse`] of a message's payload.
    pub fn message<T: DeserializeOwned>(&self, msg: &Message) -> Result<Envelope<T>, EnvelopeError> {
        self.parse(&msg.payload)
    }

    /// [`Expect::parse_valid`] of a message's payload.
    pub fn message_valid<T: DeserializeOwned + Validate>(&self, msg: &Message) -> Result<Envelope<T>, EnvelopeError> {
        self.parse_valid(&msg.payload)
    }

    /// Check an envelope against these expectations and the envelope rules.
    pub fn check<T>(&self, envelope: &Envelope<T>) -> Result<(), EnvelopeError> {
        check_id("id", &envelope.id)?;
        let meta = &envelope.metadata;
        if let Some(id) = &meta.correlation_id {
            check_id("metadata.correlation_id", id)?;
        }
        if let Some(id) = &meta.causation_id {
            check_id("metadata.causation_id", id)?;
        }
        if let Some(expected) = self.kind
            && envelope.kind != expected
        {
            return Err(EnvelopeError::Kind { expected, found: envelope.kind });
        }
        if self.prefixed_ids && !envelope.id.starts_with(envelope.kind.id_prefix()) {
            return Err(EnvelopeError::IdPrefix { id: envelope.id.clone(), prefix: envelope.kind.id_prefix() });
        }
        if let Some(major) = self.schema_major {
            match meta.schema_version {
                None => return Err(EnvelopeError::SchemaMissing { major }),
                Some(found) if found.major != major => return Err(EnvelopeError::SchemaUnsupported { found, major }),
                Some(_) => {}
            }
        }
        if self.correlation_required && meta.correlation_id.is_none() {
            return Err(EnvelopeError::CorrelationMissing);
        }
        Ok(())
    }
}

fn check_id(field: &'static str, id: &str) -> Result<(), EnvelopeError> {
    let reason = if id.is_empty() {
        "must not be empty".to_owned()
    } else if id.len() > MAX_ID_LEN {
        format!("must be at most {MAX_ID_LEN} bytes, found {}", id.len())
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
        format!("must be printable ascii without spaces, found `{id}`")
    } else {
        return Ok(());
    };
    Err(EnvelopeError::Field { field, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Payment {
        order_id: String,
        amount_cents: u64,
    }

    impl Validate for Payment {
        fn validate(&self, v: &mut Validator) {
            v.required("order_id", &self.order_id).min("amount_cents", self.amount_cents, 1);
        }
    }

    fn command(metadata: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": "command", "id": "cmd_1", "timestamp": "2024-03-20T10:00:00Z",
            "data": {"order_id": "o-1", "amount_cents": 1250}, "metadata": metadata,
        }))
        .expect("json")
    }

    const PAYMENTS: Expect = Expect::command().schema_major(1).prefixed_ids();

    #[test]
    fn parses_the_documented_shape() {
        let payload = command(json!({"schema_version": "1.2.0", "correlation_id": "corr_9", "tenant": "eu"}));
        let cmd = PAYMENTS.parse::<Payment>(&payload).expect("valid");
        assert_eq!(cmd.kind, EnvelopeKind::Command);
        assert_eq!(cmd.data, Payment { order_id: "o-1".into(), amount_cents: 1250 });
        assert_eq!(cmd.timestamp.to_string(), "2024-03-20T10:00:00Z");
        assert_eq!(cmd.metadata.schema_version, Some(SchemaVersion::new(1, 2, 0)));
        assert_eq!(cmd.correlation_id(), "corr_9");
        assert_eq!(cmd.metadata.extra.get("tenant"), Some(&json!("eu")), "unknown metadata is kept");
        // The seed's minimal form (no metadata at all) is an envelope too.
        let bare = br#"{"type":"event","id":"evt_123","timestamp":"2024-03-20T10:00:00Z","data":{}}"#;
        let event = Expect::event().parse::<Value>(bare).expect("minimal");
        assert_eq!(event.correlation_id(), "evt_123", "a message without one starts its own conversation");
    }

    #[test]
    fn every_rule_has_its_error() {
        let ok_meta = json!({"schema_version": "1.0.0"});
        let with = |patch: Value| {
            let mut value: Value = serde_json::from_slice(&command(ok_meta.clone())).expect("json");
            if let (Some(target), Value::Object(changes)) = (value.as_object_mut(), patch) {
                target.extend(changes);
            }
            serde_json::to_vec(&value).expect("json")
        };
        let cases = [
            (with(json!({"type": "event"})), "expected a command envelope, found an event"),
            (
                with(json!({"type": "rumour"})),
                "not an envelope: unknown variant `rumour`, expected one of `event`, `command`, `query`, `reply` at line 1 column 117",
            ),
            (with(json!({"id": ""})), "invalid envelope `id`: must not be empty"),
            (with(json!({"id": "cmd 1"})), "invalid envelope `id`: must be printable ascii without spaces, found `cmd 1`"),
            (with(json!({"id": "evt_1"})), "envelope id `evt_1` must start with `cmd_`"),
            (
                with(json!({"timestamp": "yesterday"})),
                "not an envelope: invalid timestamp `yesterday`: expected RFC 3339, e.g. `2024-03-20T10:00:00Z` at line 1 column 120",
            ),
            (with(json!({"metadata": {}})), "envelope has no `metadata.schema_version` (this handler reads 1.x)"),
            (with(json!({"metadata": {"schema_version": "2.0.0"}})), "schema version 2.0.0 is not supported (this handler reads 1.x)"),
            (
                with(json!({"metadata": {"schema_version": "v1"}})),
                "not an envelope: invalid schema version `v1`: expected MAJOR.MINOR.PATCH, e.g. `1.0.0` at line 1 column 141",
            ),
            (
                with(json!({"metadata": {"schema_version": "1.0.0", "correlation_id": ""}})),
                "invalid envelope `metadata.correlation_id`: must not be empty",
            ),
            (with(json!({"data": {"order_id": "o-1"}})), "envelope `data` does not fit: missing field `amount_cents`"),
            (
                with(json!({"extra": 1})),
                "not an envelope: unknown field `extra`, expected one of `type`, `id`, `timestamp`, `data`, `metadata` at line 1 column 104",
            ),
            (b"42".to_vec(), "not an envelope: invalid type: integer `42`, expected struct Envelope at line 1 column 2"),
        ];
        for (payload, expected) in cases {
            let err = PAYMENTS.parse::<Payment>(&payload).expect_err(expected);
            // Column numbers depend on key order; compare up to them where present.
            let text = err.to_string();
            let trimmed = text.split(" at line ").next().unwrap_or_default();
            assert_eq!(trimmed, expected.split(" at line ").next().unwrap_or_default(), "{}", String::from_utf8_lossy(&payload));
        }
        let no_correlation = Expect::command().correlation_required().parse::<Value>(&command(json!({})));
        assert_eq!(no_correlation.expect_err("required"), EnvelopeError::CorrelationMissing);
    }

    #[test]
    fn data_validation_reports_paths() {
        let payload = serde_json::to_vec(&json!({
            "type": "command", "id": "cmd_1", "timestamp": "2024-03-20T10:00:00Z",
            "data": {"order_id": " ", "amount_cents": 0}, "metadata": {"schema_version": "1.0.0"},
        }))
        .expect("json");
        let err = PAYMENTS.parse_valid::<Payment>(&payload).expect_err("invalid data");
        assert_eq!(
            err.to_string(),
            "message validation failed: `data.order_id` is required; `data.amount_cents` must be at least 1, found 0"
        );
    }

    #[test]
    fn follow_ups_carry_the_conversation_and_are_deterministic() {
        let cmd = PAYMENTS.parse::<Payment>(&command(json!({"schema_version": "1.0.0", "correlation_id": "corr_9"}))).expect("valid");
        let at = Timestamp::parse("2024-03-20T10:00:01Z").expect("time");
        let event =
            cmd.follow_up(EnvelopeKind::Event, "processed", at, json!({"ok": true})).with_schema_version(SchemaVersion::new(1, 0, 0));
        assert!(event.id.starts_with("evt_") && event.id.len() == 28, "{}", event.id);
        assert_eq!(event.id, cmd.follow_up(EnvelopeKind::Event, "processed", at, ()).id, "same source, same id");
        assert_ne!(event.id, cmd.follow_up(EnvelopeKind::Event, "declined", at, ()).id);
        assert_eq!(event.metadata.correlation_id.as_deref(), Some("corr_9"));
        assert_eq!(event.metadata.causation_id.as_deref(), Some("cmd_1"));
        let json: Value = serde_json::from_slice(&event.to_json().expect("json")).expect("json");
        assert_eq!(
            json,
            json!({"type": "event", "id": event.id, "timestamp": "2024-03-20T10:00:01Z", "data": {"ok": true},
                   "metadata": {"schema_version": "1.0.0", "correlation_id": "corr_9", "causation_id": "cmd_1"}})
        );
        // What it writes, it reads back.
        let again = Expect::event().schema_major(1).prefixed_ids().parse::<Value>(&event.to_json().expect("json")).expect("round trip");
        assert_eq!(again, event);

        let reply = cmd.reply(at, 5u8).with_meta("served_by", "payments");
        assert!(reply.id.starts_with("rpl_"));
        assert_eq!(reply.kind, EnvelopeKind::Reply);
        assert_eq!(reply.metadata.extra.get("served_by"), Some(&json!("payments")));
    }

    #[test]
    fn schema_versions() {
        assert_eq!(SchemaVersion::parse("10.0.3"), Ok(SchemaVersion::new(10, 0, 3)));
        for bad in ["1", "1.0", "1.0.0.0", "01.0.0", "1.0.x", "1.0.0-beta", ""] {
            assert!(SchemaVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(SchemaVersion::new(1, 10, 0) > SchemaVersion::new(1, 9, 9));
    }
}
