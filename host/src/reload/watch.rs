//! Watching runtime.toml and the plugin files.
//!
//! The watcher follows *directories*, not files: editors and deploy tools
//! replace a file by writing a temporary one and renaming it, or by swapping a
//! symlink, and a watch on the old inode would go quiet. Events for the files of
//! interest (or for `..data`-style symlink swaps) start a quiet period; when no
//! event has come for [`DEBOUNCE`], one reload is requested. The reload compares
//! content hashes, so a burst of events for one save loads the new version once,
//! and a half-written file seen mid-burst is simply read again after it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::Request;

/// Quiet time after the last file event before a reload.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(50);

pub(crate) struct Watcher {
    inner: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
    names: std::sync::Arc<std::sync::Mutex<BTreeSet<OsString>>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("dirs", &self.dirs).finish_non_exhaustive()
    }
}

impl Watcher {
    /// Start watching; relevant events become [`Request::Reload`]s on `requests`.
    pub(crate) fn new(requests: mpsc::Sender<Request>) -> anyhow::Result<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel::<()>();
        let names: std::sync::Arc<std::sync::Mutex<BTreeSet<OsString>>> = Default::default();
        let wanted = names.clone();
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Reading a file (as every reload does) must not trigger a reload.
            if matches!(event.kind, notify::EventKind::Access(_) | notify::EventKind::Other) {
                return;
            }
            let Ok(names) = wanted.lock() else { return };
            let relevant = event
                .paths
                .iter()
                .any(|path| path.file_name().is_some_and(|name| names.contains(name) || name.to_string_lossy().starts_with("..")));
            if relevant {
                let _ = events_tx.send(());
            }
        })?;
        tokio::spawn(debounce(events_rx, requests));
        Ok(Self { inner, dirs: BTreeSet::new(), names })
    }

    /// Watch the directories of `files` (and of their symlink targets), and
    /// nothing else.
    pub(crate) fn watch(&mut self, files: &[PathBuf]) {
        let mut dirs = BTreeSet::new();
        let mut names = BTreeSet::new();
        for file in files {
            let targets = [Some(file.clone()), std::fs::canonicalize(file).ok()];
            for path in targets.into_iter().flatten() {
                if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
                    dirs.insert(dir.to_path_buf());
                    names.insert(name.to_owned());
                }
            }
        }
        if let Ok(mut wanted) = self.names.lock() {
            *wanted = names;
        }
        for gone in self.dirs.difference(&dirs) {
            let _ = self.inner.unwatch(gone);
        }
        for dir in dirs.difference(&self.dirs) {
            if let Err(err) = self.inner.watch(Path::new(dir), RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), "cannot watch for changes: {err}");
            }
        }
        self.dirs = dirs;
    }
}

async fn debounce(mut events: mpsc::UnboundedReceiver<()>, requests: mpsc::Sender<Request>) {
    while events.recv().await.is_some() {
        // Wait until the burst is over.
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, events.recv()).await {}
        let request = Request::Reload { cause: "file change".into(), reply: None };
        if requests.send(request).await.is_err() {
            return;
        }
    }
}
