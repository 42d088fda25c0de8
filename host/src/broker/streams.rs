//! Streams declared in runtime.toml, and the dead-letter stream: created when
//! missing. A stream is shared by every host of a fleet, so an existing one is
//! never silently rewritten: settings that differ from the file are a startup
//! error naming each field, unless the operator set `update = true`, and even
//! then only changes that lose no data are made (more subjects, other
//! replicas, higher limits), each logged.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind, UpdateStreamErrorKind};
use async_nats::jetstream::{self, ErrorCode, stream};

use super::startup::{Failure, retrying};
use crate::config::{DeadLetterConfig, Retention, Storage, StreamConfig};

/// Create or check every declared stream.
pub async fn ensure_streams(js: &jetstream::Context, streams: &[StreamConfig], deadline: Instant) -> anyhow::Result<()> {
    for declared in streams {
        ensure(js, &Wanted::stream(declared), deadline).await?;
    }
    Ok(())
}

/// The stream dead letters go to: `<subject_prefix>.>`, limits retention so they
/// can be listed and replayed.
pub async fn ensure_dead_letter_stream(js: &jetstream::Context, dlq: &DeadLetterConfig, deadline: Instant) -> anyhow::Result<()> {
    ensure(js, &Wanted::dead_letter(dlq), deadline).await
}

/// What runtime.toml says a stream must be. Limits the file leaves out are not
/// compared: the operator may have set them on the server.
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    /// "stream `ORDERS`" or "dead-letter stream `SWITCHYARD_DLQ`".
    label: String,
    /// The key that allows updates, for the error message.
    update_key: &'static str,
    update: bool,
    name: String,
    subjects: Vec<String>,
    retention: stream::RetentionPolicy,
    storage: stream::StorageType,
    replicas: usize,
    max_age: Option<Duration>,
    max_msgs: Option<i64>,
    max_bytes: Option<i64>,
    duplicate_window: Option<Duration>,
}

/// One setting that differs between the server and the file.
#[derive(Debug, Clone, PartialEq)]
struct Difference {
    field: &'static str,
    server: String,
    file: String,
    /// Why NATS cannot apply it without losing data, when it cannot.
    unsafe_because: Option<&'static str>,
}

impl Wanted {
    fn stream(declared: &StreamConfig) -> Self {
        Self {
            label: format!("stream `{}`", declared.name.get_ref()),
            update_key: "`update = true` on the stream",
            update: declared.update,
            name: declared.name.get_ref().clone(),
            subjects: declared.subjects.clone(),
            retention: match declared.retention {
                Retention::Limits => stream::RetentionPolicy::Limits,
                Retention::Interest => stream::RetentionPolicy::Interest,
                Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
            },
            storage: storage(declared.storage),
            replicas: declared.replicas,
            max_age: declared.max_age,
            max_msgs: declared.max_msgs,
            max_bytes: declared.max_bytes.map(|b| b.as_u64() as i64),
            duplicate_window: declared.duplicate_window,
        }
    }

    fn dead_letter(dlq: &DeadLetterConfig) -> Self {
        Self {
            label: format!("dead-letter stream `{}`", dlq.stream),
            update_key: "`dead_letter.update = true`",
            update: dlq.update,
            name: dlq.stream.clone(),
            subjects: vec![format!("{}.>", dlq.subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            storage: storage(dlq.storage),
            replicas: dlq.replicas,
            max_age: Some(dlq.max_age),
            max_msgs: None,
            max_bytes: None,
            duplicate_window: None,
        }
    }

    /// The config a new stream is created with.
    fn create(&self) -> stream::Config {
        self.apply(stream::Config { name: self.name.clone(), max_messages: -1, max_bytes: -1, ..Default::default() })
    }

    /// `existing` with the file's settings on top; what the file does not name
    /// (discard policy, limits left out) stays as the server has it.
    fn apply(&self, mut config: stream::Config) -> stream::Config {
        config.subjects.clone_from(&self.subjects);
        config.retention = self.retention;
        config.storage = self.storage;
        config.num_replicas = self.replicas;
        if let Some(age) = self.max_age {
            config.max_age = age;
        }
        if let Some(n) = self.max_msgs {
            config.max_messages = n;
        }
        if let Some(n) = self.max_bytes {
            config.max_bytes = n;
        }
        if let Some(window) = self.duplicate_window {
            config.duplicate_window = window;
        }
        config
    }

    /// Every setting of the file that the server's stream does not have.
    fn differences(&self, server: &stream::Config) -> Vec<Difference> {
        let mut out = Vec::new();
        let mut differ = |field, server: String, file: String, unsafe_because| {
            out.push(Difference { field, server, file, unsafe_because });
        };
        let (have, want): (BTreeSet<&String>, BTreeSet<&String>) = (server.subjects.iter().collect(), self.subjects.iter().collect());
        if have != want {
            let dropped = !have.is_subset(&want);
            differ("subjects", list(&have), list(&want), dropped.then_some("messages on the subjects left out would no longer be stored"));
        }
        if server.retention != self.retention {
            differ(
                "retention",
                format!("{:?}", server.retention),
                format!("{:?}", self.retention),
                Some("NATS cannot change a stream's retention"),
            );
        }
        if server.storage != self.storage {
            differ(
                "storage",
                format!("{:?}", server.storage),
                format!("{:?}", self.storage),
                Some("NATS cannot change a stream's storage"),
            );
        }
        if server.num_replicas.max(1) != self.replicas {
            differ("replicas", server.num_replicas.to_string(), self.replicas.to_string(), None);
        }
        if let Some(age) = self.max_age
            && age != server.max_age
        {
            let shrinks = !age.is_zero() && (server.max_age.is_zero() || age < server.max_age);
            differ("max_age", show_age(server.max_age), show_age(age), shrinks.then_some("older messages would be deleted"));
        }
        for (field, wanted, server) in [("max_msgs", self.max_msgs, server.max_messages), ("max_bytes", self.max_bytes, server.max_bytes)] {
            if let Some(n) = wanted
                && limit(n) != limit(server)
            {
                let shrinks = shrinks(limit(server), limit(n));
                differ(field, show_limit(server), show_limit(n), shrinks.then_some("messages over the new limit would be deleted"));
            }
        }
        if let Some(window) = self.duplicate_window
            && window != server.duplicate_window
        {
            differ("duplicate_window", show_age(server.duplicate_window), show_age(window), None);
        }
        out
    }
}

/// Look the stream up; create it when missing; otherwise check it against the
/// file (and update it when allowed). Retried while the cluster is not ready
/// or another host creates it at the same moment.
async fn ensure(js: &jetstream::Context, wanted: &Wanted, deadline: Instant) -> anyhow::Result<()> {
    retrying(&format!("setting up {}", wanted.label), deadline, || async {
        match js.get_stream(&wanted.name).await {
            Ok(found) => reconcile(js, wanted, found.cached_info().config.clone()).await,
            Err(err) => match err.kind() {
                GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => create(js, wanted).await,
                GetStreamErrorKind::JetStream(e) => Err(Failure::from_jetstream(Some(e.error_code()), err.into())),
                _ => Err(Failure::Transient(err.into())),
            },
        }
    })
    .await
}

async fn create(js: &jetstream::Context, wanted: &Wanted) -> Result<(), Failure> {
    match js.create_stream(wanted.create()).await {
        Ok(_) => {
            tracing::info!("{} created", wanted.label);
            Ok(())
        }
        Err(err) => match err.kind() {
            // Another host created it first: the next try compares it.
            CreateStreamErrorKind::JetStream(e) => Err(Failure::from_jetstream(Some(e.error_code()), err.into())),
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => Err(Failure::Transient(err.into())),
            _ => Err(Failure::Fatal(err.into())),
        },
    }
}

async fn reconcile(js: &jetstream::Context, wanted: &Wanted, server: stream::Config) -> Result<(), Failure> {
    let differences = wanted.differences(&server);
    if differences.is_empty() {
        tracing::info!("{} ready", wanted.label);
        return Ok(());
    }
    let lossy: Vec<&Difference> = differences.iter().filter(|d| d.unsafe_because.is_some()).collect();
    if !wanted.update || !lossy.is_empty() {
        return Err(Failure::Fatal(anyhow::anyhow!(refusal(wanted, &differences, &lossy))));
    }
    for d in &differences {
        tracing::warn!("{}: changing `{}` from {} to {} (`update = true`)", wanted.label, d.field, d.server, d.file);
    }
    match js.update_stream(wanted.apply(server)).await {
        Ok(_) => Ok(()),
        Err(err) => match err.kind() {
            UpdateStreamErrorKind::JetStream(e) => Err(Failure::from_jetstream(Some(e.error_code()), err.into())),
            UpdateStreamErrorKind::TimedOut => Err(Failure::Transient(err.into())),
            _ => Err(Failure::Fatal(err.into())),
        },
    }
}

/// The startup error for a stream that differs from the file.
fn refusal(wanted: &Wanted, differences: &[Difference], lossy: &[&Difference]) -> String {
    let fields: Vec<String> =
        differences.iter().map(|d| format!("`{}` is {} on the server, {} in runtime.toml", d.field, d.server, d.file)).collect();
    let mut text = format!("{} exists with other settings: {}", wanted.label, fields.join("; "));
    if lossy.is_empty() {
        text.push_str(&format!(
            ". The host does not change a shared stream it is not told to: make runtime.toml match, or set {} to apply these changes",
            wanted.update_key
        ));
    } else {
        let why: Vec<String> = lossy.iter().map(|d| format!("`{}`: {}", d.field, d.unsafe_because.unwrap_or_default())).collect();
        text.push_str(&format!(". These cannot be applied without losing data, with or without {}: {}", wanted.update_key, why.join("; ")));
    }
    text
}

pub(super) fn storage(storage: Storage) -> stream::StorageType {
    match storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    }
}

/// A message or byte limit, `None` for unlimited (NATS writes -1, or 0 as given).
fn limit(n: i64) -> Option<i64> {
    (n > 0).then_some(n)
}

fn shrinks(server: Option<i64>, file: Option<i64>) -> bool {
    match (server, file) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(s), Some(f)) => f < s,
    }
}

/// A limit as an operator reads it (also the consumers' limits).
pub(super) fn show_limit(n: i64) -> String {
    limit(n).map_or_else(|| "unlimited".into(), |n| n.to_string())
}

fn show_age(d: Duration) -> String {
    if d.is_zero() { "unlimited".into() } else { format!("`{}`", humantime::format_duration(d)) }
}

fn list(subjects: &BTreeSet<&String>) -> String {
    let quoted: Vec<String> = subjects.iter().map(|s| format!("`{s}`")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> Wanted {
        let declared: StreamConfig = toml::from_str(
            r#"
            name = "ORDERS"
            subjects = ["orders.>"]
            retention = "workqueue"
            replicas = 3
            "#,
        )
        .expect("stream config");
        Wanted::stream(&declared)
    }

    #[test]
    fn a_stream_made_from_the_file_matches_it() {
        let wanted = orders();
        assert_eq!(wanted.differences(&wanted.create()), vec![]);
    }

    #[test]
    fn limits_the_file_leaves_out_are_not_compared() {
        let wanted = orders();
        let server = stream::Config { max_messages: 500, discard: stream::DiscardPolicy::New, ..wanted.create() };
        assert_eq!(wanted.differences(&server), vec![]);
        assert_eq!(wanted.apply(server.clone()).max_messages, 500, "an operator's limit is kept");
    }

    #[test]
    fn fewer_replicas_and_a_lower_limit_are_named_and_the_limit_is_lossy() {
        let mut wanted = orders();
        wanted.replicas = 1;
        wanted.max_msgs = Some(10);
        let server = orders().create();
        let differences = wanted.differences(&server);
        let fields: Vec<&str> = differences.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["replicas", "max_msgs"]);
        assert!(differences[0].unsafe_because.is_none(), "replicas can change without loss");
        assert!(differences[1].unsafe_because.is_some(), "10 < unlimited deletes messages");
        let text = refusal(&wanted, &differences, &[&differences[1]]);
        assert!(text.contains("`replicas` is 3 on the server, 1 in runtime.toml"), "{text}");
        assert!(text.contains("cannot be applied without losing data"), "{text}");
    }

    #[test]
    fn added_subjects_are_safe_and_dropped_ones_are_not() {
        let mut wanted = orders();
        wanted.subjects.push("refunds.>".into());
        let added = wanted.differences(&orders().create());
        assert_eq!(added.len(), 1);
        assert!(added[0].unsafe_because.is_none());
        let dropped = orders().differences(&wanted.create());
        assert!(dropped[0].unsafe_because.is_some());
    }

    #[test]
    fn retention_and_storage_never_change() {
        let wanted = orders();
        let server = stream::Config { retention: stream::RetentionPolicy::Limits, storage: stream::StorageType::Memory, ..wanted.create() };
        let differences = wanted.differences(&server);
        assert!(differences.iter().all(|d| d.unsafe_because.is_some()), "{differences:?}");
        assert_eq!(differences.len(), 2);
    }

    #[test]
    fn raising_a_limit_or_lifting_it_is_safe() {
        let mut small = orders();
        small.max_age = Some(Duration::from_secs(60));
        let server = small.create();
        let mut longer = orders();
        longer.max_age = Some(Duration::from_secs(3600));
        assert!(longer.differences(&server)[0].unsafe_because.is_none());
        let mut unlimited = orders();
        unlimited.max_age = Some(Duration::ZERO);
        assert!(unlimited.differences(&server)[0].unsafe_because.is_none());
        assert!(small.differences(&longer.create())[0].unsafe_because.is_some());
    }
}
