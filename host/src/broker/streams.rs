//! Streams declared in runtime.toml, and the dead-letter stream, created at
//! startup or updated to match the file.

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use crate::config::{DeadLetterConfig, Retention, Storage, StreamConfig};

/// Create or update every declared stream.
pub async fn ensure_streams(js: &jetstream::Context, streams: &[StreamConfig]) -> anyhow::Result<()> {
    for declared in streams {
        let config = stream::Config {
            name: declared.name.get_ref().clone(),
            subjects: declared.subjects.clone(),
            retention: match declared.retention {
                Retention::Limits => stream::RetentionPolicy::Limits,
                Retention::Interest => stream::RetentionPolicy::Interest,
                Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
            },
            storage: storage(declared.storage),
            max_age: declared.max_age.unwrap_or_default(),
            max_messages: declared.max_msgs.unwrap_or(-1),
            max_bytes: declared.max_bytes.map_or(-1, |b| b.as_u64() as i64),
            num_replicas: declared.replicas,
            duplicate_window: declared.duplicate_window.unwrap_or_default(),
            ..Default::default()
        };
        let name = config.name.clone();
        js.create_or_update_stream(config).await.with_context(|| format!("creating or updating stream `{name}`"))?;
        tracing::info!(stream = %name, "stream ready");
    }
    Ok(())
}

/// The stream dead letters go to: `<subject_prefix>.>`, limits retention so they
/// can be listed and replayed.
pub async fn ensure_dead_letter_stream(js: &jetstream::Context, dlq: &DeadLetterConfig) -> anyhow::Result<()> {
    let config = stream::Config {
        name: dlq.stream.clone(),
        subjects: vec![format!("{}.>", dlq.subject_prefix)],
        storage: storage(dlq.storage),
        max_age: dlq.max_age,
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .with_context(|| format!("creating or updating the dead-letter stream `{}`", dlq.stream))?;
    Ok(())
}

fn storage(storage: Storage) -> stream::StorageType {
    match storage {
        Storage::File => stream::StorageType::File,
        Storage::Memory => stream::StorageType::Memory,
    }
}
