//! The fleet's registry: each host keeps an entry in the key-value bucket
//! `SWITCHYARD_HOSTS` (which plugins it serves, at which versions), written
//! when it starts and after each reload, renewed every `RENEW`, and removed
//! when it stops. `deploy` and `status` read it to know which hosts should
//! answer: a host that was killed or cut off answers no control request, and
//! without the registry nothing would say it is missing. An entry not renewed
//! for `MAX_AGE` expires, so a host gone for good stops being reported.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

pub(crate) const BUCKET: &str = "SWITCHYARD_HOSTS";
/// How often a running host renews its entry.
pub(crate) const RENEW: Duration = Duration::from_secs(60);
/// How long an entry outlives its host's last renewal.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// The bound on one write: the serve loop waits for it, and must not wait
/// out a cut-off connection's whole request timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// One host, as the registry knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// As in `switchyard status`: `hostname:pid`.
    pub(crate) host: String,
    /// Each plugin a route of the host serves, and its version.
    pub(crate) plugins: BTreeMap<String, String>,
    /// Unix seconds of the last write.
    pub(crate) renewed_at: u64,
}

impl Entry {
    pub(crate) fn new(host: String, plugins: BTreeMap<String, String>) -> Self {
        let renewed_at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Entry { host, plugins, renewed_at }
    }

    /// How long ago it was last written.
    pub(crate) fn age(&self) -> Duration {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Duration::from_secs(now.saturating_sub(self.renewed_at))
    }
}

/// A host's handle on its own entry.
pub(crate) struct Registry {
    kv: kv::Store,
}

impl Registry {
    /// Open the bucket (created with `replicas` when missing), write `entry`,
    /// and remove the entries of earlier hosts on this machine that no longer
    /// run (a host killed and started again has another pid).
    pub(crate) async fn join(js: &jetstream::Context, replicas: usize, entry: &Entry) -> anyhow::Result<Registry> {
        let kv = match js.get_key_value(BUCKET).await {
            Ok(kv) => kv,
            Err(_) => {
                let config =
                    kv::Config { bucket: BUCKET.to_owned(), history: 1, max_age: MAX_AGE, num_replicas: replicas, ..Default::default() };
                match js.create_key_value(config).await {
                    Ok(kv) => kv,
                    // Another host made it meanwhile.
                    Err(err) => {
                        js.get_key_value(BUCKET).await.map_err(|_| anyhow::anyhow!("creating the key-value bucket `{BUCKET}`: {err}"))?
                    }
                }
            }
        };
        let registry = Registry { kv };
        registry.put(entry).await;
        let (machine, _) = entry.host.rsplit_once(':').unwrap_or((&entry.host, ""));
        for earlier in entries(js).await.unwrap_or_default() {
            let gone = earlier.host.rsplit_once(':').is_some_and(|(m, pid)| {
                m == machine
                    && earlier.host != entry.host
                    && pid.parse::<u32>().is_ok()
                    && !std::path::Path::new("/proc").join(pid).exists()
            });
            if gone {
                tracing::info!("`{BUCKET}`: removing `{}`, an earlier host on this machine that no longer runs", earlier.host);
                registry.leave(&earlier.host).await;
            }
        }
        Ok(registry)
    }

    pub(crate) async fn put(&self, entry: &Entry) {
        let value = serde_json::to_vec(entry).expect("an entry serializes");
        let put = self.kv.put(key(&entry.host), value.into());
        match tokio::time::timeout(WRITE_TIMEOUT, put).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!("cannot write this host's entry in `{BUCKET}`: {err}"),
            Err(_) => tracing::warn!("cannot write this host's entry in `{BUCKET}`: no answer within {WRITE_TIMEOUT:?}"),
        }
    }

    /// Stopping: the host is no longer part of the fleet.
    pub(crate) async fn leave(&self, host: &str) {
        match tokio::time::timeout(WRITE_TIMEOUT, self.kv.purge(key(host))).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!("cannot remove `{host}` from `{BUCKET}`: {err}"),
            Err(_) => tracing::warn!("cannot remove `{host}` from `{BUCKET}`: no answer within {WRITE_TIMEOUT:?}"),
        }
    }
}

/// Every registered host; none when the bucket does not exist.
pub(crate) async fn entries(js: &jetstream::Context) -> anyhow::Result<Vec<Entry>> {
    let Ok(kv) = js.get_key_value(BUCKET).await else { return Ok(Vec::new()) };
    let keys: Vec<String> = kv.keys().await?.try_collect().await?;
    let mut entries = Vec::new();
    for key in keys {
        if let Some(value) = kv.get(&key).await? {
            match serde_json::from_slice(&value) {
                Ok(entry) => entries.push(entry),
                Err(err) => tracing::warn!("`{BUCKET}` key `{key}` is not a host entry: {err}"),
            }
        }
    }
    Ok(entries)
}

/// A key-value key for a host name: characters keys do not allow become `_`.
fn key(host: &str) -> String {
    host.chars().map(|c| if c.is_ascii_alphanumeric() || "-_=".contains(c) { c } else { '_' }).collect()
}
