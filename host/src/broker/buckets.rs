//! Key-value buckets declared in runtime.toml (`[[buckets]]`): created when
//! missing. Like a stream, a bucket is shared by every host of a fleet, so one
//! that exists with other settings is a startup error naming each, never
//! rewritten.

use std::time::{Duration, Instant};

use async_nats::jetstream::context::{CreateKeyValueErrorKind, KeyValueErrorKind};
use async_nats::jetstream::{self, kv, stream};

use super::startup::{Failure, retrying};
use super::streams::storage;
use crate::config::BucketConfig;

/// Create or check every declared bucket.
pub async fn ensure_buckets(js: &jetstream::Context, buckets: &[BucketConfig], deadline: Instant) -> anyhow::Result<()> {
    for bucket in buckets {
        let what = format!("bucket `{}`", bucket.name.get_ref());
        retrying(&what, deadline, || ensure(js, bucket)).await?;
    }
    Ok(())
}

async fn ensure(js: &jetstream::Context, bucket: &BucketConfig) -> Result<(), Failure> {
    let name = bucket.name.get_ref();
    match js.get_key_value(name).await {
        Ok(store) => {
            let info = store.status().await.map_err(|err| Failure::Transient(anyhow::anyhow!("reading its settings: {err}")))?;
            let differences = differences(bucket, &info.info.config);
            if differences.is_empty() {
                return Ok(());
            }
            Err(Failure::Fatal(anyhow::anyhow!(
                "it exists with other settings than runtime.toml's ({}); change the file, or the bucket on the server \
                 (buckets are shared by every host, so the host never rewrites one)",
                differences.join("; ")
            )))
        }
        Err(err) if err.kind() == KeyValueErrorKind::GetBucket => create(js, bucket).await,
        Err(err) => Err(Failure::Transient(anyhow::anyhow!("{err}"))),
    }
}

async fn create(js: &jetstream::Context, bucket: &BucketConfig) -> Result<(), Failure> {
    let config = kv::Config {
        bucket: bucket.name.get_ref().clone(),
        history: bucket.history,
        max_age: bucket.ttl.unwrap_or_default(),
        max_value_size: bucket.max_value_size.map_or(-1, |size| size.as_u64() as i32),
        storage: storage(bucket.storage),
        num_replicas: bucket.replicas,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(_) => {
            tracing::info!(bucket = %bucket.name.get_ref(), "key-value bucket created");
            Ok(())
        }
        // Another host created it first, or the cluster is not ready: check again.
        Err(err) if matches!(err.kind(), CreateKeyValueErrorKind::TimedOut | CreateKeyValueErrorKind::BucketCreate) => {
            Err(Failure::Transient(anyhow::anyhow!("{err}")))
        }
        Err(err) => Err(Failure::Fatal(anyhow::anyhow!("{err}"))),
    }
}

/// Each setting of the file that the server's bucket (its stream) does not have.
fn differences(bucket: &BucketConfig, server: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |field: &str, server: String, file: String| {
        if server != file {
            out.push(format!("{field}: server {server}, file {file}"));
        }
    };
    differ("history", server.max_messages_per_subject.to_string(), bucket.history.to_string());
    differ("ttl", age(server.max_age), age(bucket.ttl.unwrap_or_default()));
    differ("replicas", server.num_replicas.to_string(), bucket.replicas.to_string());
    differ("storage", format!("{:?}", server.storage).to_lowercase(), format!("{:?}", storage(bucket.storage)).to_lowercase());
    if let Some(size) = bucket.max_value_size {
        differ("max_value_size", server.max_message_size.to_string(), size.as_u64().to_string());
    }
    out
}

fn age(age: Duration) -> String {
    if age.is_zero() { "none".to_owned() } else { humantime::format_duration(age).to_string() }
}
