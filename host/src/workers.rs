//! The set of long-running worker tasks, each with a name so a shutdown that runs
//! out of time can say exactly what was still busy.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

#[derive(Debug, Default)]
pub(crate) struct Workers {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

impl Workers {
    pub(crate) fn spawn(&mut self, name: String, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Wait up to `deadline` for every worker to return; then abort the rest and
    /// return their names.
    pub(crate) async fn join_within(mut self, deadline: Duration) -> Vec<String> {
        let names = &mut self.names;
        let set = &mut self.set;
        let _ = tokio::time::timeout(deadline, async {
            while let Some(result) = set.join_next_with_id().await {
                let id = match &result {
                    Ok((id, ())) => *id,
                    Err(err) => err.id(),
                };
                let name = names.remove(&id).unwrap_or_default();
                if let Err(err) = result
                    && err.is_panic()
                {
                    tracing::error!("worker {name} panicked: {err}");
                }
            }
        })
        .await;
        self.set.shutdown().await;
        let mut still_busy: Vec<String> = self.names.into_values().collect();
        still_busy.sort();
        still_busy
    }
}
