//! The real `switchyard` binary as a child process, configured by a runtime.toml
//! written into its own temporary folder.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `switchyard` binary next to the test executable (target/<profile>/), or
/// `$SWITCHYARD_BIN`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join("switchyard");
    assert!(path.is_file(), "{} is missing: run `cargo build -p switchyard` (make test does)", path.display());
    path
}

pub struct Host {
    child: Child,
    /// `http://<addr>` of the admin listener, from the `ready:` line.
    admin: Option<String>,
    dir: tempfile::TempDir,
    output: Arc<Mutex<Vec<(Instant, String)>>>,
    /// The tasks reading stdout and stderr: done once the pipes close.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Host {
    /// Write `config` as runtime.toml and run the host on it, returning once it
    /// prints that it is ready.
    pub async fn start(config: &str) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config).await
    }

    /// Start a config some of whose routes are expected not to run.
    pub async fn start_partial(config: &str) -> Host {
        Self::spawn_config(tempfile::tempdir().expect("temp dir"), config).await.0
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str) -> Host {
        Self::all_routes_running(Self::spawn_config(dir, config).await)
    }

    /// Write `config` as `runtime.toml` in `dir` and run it.
    async fn spawn_config(dir: tempfile::TempDir, config: &str) -> (Host, String) {
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, config).expect("write runtime.toml");
        Self::spawn(dir, &path, None).await
    }

    /// Run `config` when it is expected to fail at start: the exit status and
    /// everything printed, once it exits (bounded by `limit`).
    pub async fn start_failing(config: &str, limit: Duration) -> (ExitStatus, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, config).expect("write runtime.toml");
        let output = Command::new(binary())
            .arg("run")
            .arg(&path)
            .args(["--admin-listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = crate::within(limit, "switchyard to exit at start", output).await.expect("run switchyard");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status, text)
    }

    /// Run a runtime.toml where it lies (an example's), on the given server.
    pub async fn start_file(path: &Path, nats_url: &str) -> Host {
        Self::all_routes_running(Self::spawn(tempfile::tempdir().expect("temp dir"), path, Some(nats_url)).await)
    }

    /// Start the host and wait for its `ready:` line; returns both.
    async fn spawn(dir: tempfile::TempDir, path: &Path, nats_url: Option<&str>) -> (Host, String) {
        let mut command = Command::new(binary());
        // Tests run side by side: each host's admin listener on a port of its own.
        command.arg("run").arg(path).args(["--admin-listen", "127.0.0.1:0"]);
        if let Some(url) = nats_url {
            command.args(["--nats-url", url]);
        }
        let mut child = command
            .current_dir(dir.path())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn switchyard");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), output.clone(), Some(ready_tx)),
            collect(child.stderr.take().expect("stderr"), output.clone(), None),
        ];
        let mut host = Host { child, admin: None, dir, output, readers };
        match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
            Ok(Ok(line)) => {
                // "...; metrics and probes on http://127.0.0.1:PORT; Ctrl-C to stop"
                host.admin = line.split("; ").find_map(|part| part.strip_prefix("metrics and probes on ")).map(str::to_owned);
                (host, line)
            }
            _ => panic!("switchyard did not become ready; its output:\n{}", host.output()),
        }
    }

    /// A route that did not start fails the test here, with the host's output,
    /// rather than later as a puzzling "no responders" or a missing message.
    fn all_routes_running((host, ready): (Host, String)) -> Host {
        // "ready: X of Y route(s) running; ..."
        let words: Vec<&str> = ready.trim_start_matches("ready: ").split(' ').collect();
        match words.as_slice() {
            [running, "of", total, ..] if running == total => host,
            _ => panic!("not every route started ({ready}); the host's output:\n{}", host.output()),
        }
    }

    /// The admin listener's base URL, `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> &str {
        self.admin.as_deref().expect("the host's ready line names its admin listener")
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the host is running")
    }

    /// Everything the host printed so far (stdout and logs).
    pub fn output(&self) -> String {
        self.lines().into_iter().map(|(_, line)| line + "\n").collect()
    }

    /// The host's output lines with the moment each was read.
    pub fn lines(&self) -> Vec<(Instant, String)> {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send `signal` to the host process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub async fn stop(mut self) -> (ExitStatus, String) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        let status = crate::within(Duration::from_secs(30), "switchyard to exit after SIGTERM", self.child.wait())
            .await
            .expect("wait for switchyard");
        // The last lines (the counters at "stopped;") may still be in the pipes.
        let readers = futures::future::join_all(std::mem::take(&mut self.readers));
        crate::within(Duration::from_secs(10), "the host's output to be read to its end", readers).await;
        (status, self.output())
    }

    /// SIGKILL: a crash, no shutdown at all. Returns the temp folder so the same
    /// config can be started again.
    pub async fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill().await;
        self.dir
    }
}

fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    output: Arc<Mutex<Vec<(Instant, String)>>>,
    mut ready: Option<tokio::sync::oneshot::Sender<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("SWITCHYARD_TEST_ECHO").is_some() {
                eprintln!("host| {line}");
            }
            if let Ok(mut output) = output.lock() {
                output.push((Instant::now(), line.clone()));
            }
            if line.starts_with("ready:")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(line);
            }
        }
    })
}

/// A `[nats]` + `[host]` preamble pointing at `url`, with the plugin cache shared
/// by every test of the run (so each plugin compiles once).
pub fn preamble(url: &str) -> String {
    let cache = crate::workspace().join("target/test-plugin-cache");
    format!("[nats]\nurl = \"{url}\"\n\n[host]\ncache_dir = \"{}\"\nshutdown_timeout = \"10s\"\n\n", cache.display())
}
