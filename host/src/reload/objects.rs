//! Watching the object stores plugins come from (`source = "object:BUCKET/NAME"`):
//! a change to a watched object becomes a [`Request::Reload`], which fetches
//! it and swaps the new version in as it would a changed file (probation and
//! rollback included). A bucket that does not exist yet is looked for again,
//! so a host started before the first deploy picks it up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::Context as JetStream;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Request;
use crate::config::Config;

/// How long to wait before looking for a bucket again, or re-opening a watch.
const RETRY: Duration = Duration::from_secs(2);

/// The watches of one config's object sources; stopped when dropped.
#[derive(Debug, Default)]
pub(crate) struct ObjectWatcher {
    watching: BTreeSet<(String, String)>,
    tasks: Vec<JoinHandle<()>>,
}

impl ObjectWatcher {
    /// Watch the objects `config`'s plugins come from (again only if they changed).
    pub(crate) fn watch(&mut self, js: &JetStream, config: &Config, requests: &mpsc::Sender<Request>) {
        let sources: BTreeSet<(String, String)> = config
            .plugins
            .values()
            .filter_map(|p| p.source.as_ref().map(|s| (s.get_ref().bucket.clone(), s.get_ref().object.clone())))
            .collect();
        if sources == self.watching {
            return;
        }
        self.stop();
        let mut buckets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (bucket, object) in &sources {
            buckets.entry(bucket.clone()).or_default().insert(object.clone());
        }
        self.tasks = buckets
            .into_iter()
            .map(|(bucket, objects)| tokio::spawn(watch_bucket(js.clone(), bucket, objects, requests.clone())))
            .collect();
        self.watching = sources;
    }

    fn stop(&mut self) {
        self.tasks.drain(..).for_each(|task| task.abort());
    }
}

impl Drop for ObjectWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn watch_bucket(js: JetStream, bucket: String, objects: BTreeSet<String>, requests: mpsc::Sender<Request>) {
    let mut warned = false;
    loop {
        let watch = match js.get_object_store(&bucket).await {
            Ok(store) => store.watch().await.map_err(|err| err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let mut watch = match watch {
            Ok(watch) => watch,
            Err(err) => {
                if !warned {
                    tracing::warn!(%bucket, "cannot watch the plugin bucket ({err}); looking again every {RETRY:?}");
                    warned = true;
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if warned {
            // The bucket appeared after the host started: what is in it now is new.
            let cause = format!("object store bucket `{bucket}` is there now");
            if requests.send(Request::Reload { cause, reply: None }).await.is_err() {
                return;
            }
            warned = false;
        }
        while let Some(change) = watch.next().await {
            match change {
                Ok(info) if objects.contains(&info.name) => {
                    let cause = format!("object:{bucket}/{} changed", info.name);
                    if requests.send(Request::Reload { cause, reply: None }).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%bucket, "watching the plugin bucket: {err}; watching again");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
