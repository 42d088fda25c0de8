//! A real nats-server per test: loopback, dynamic port, JetStream in a temporary
//! folder, killed on Drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary: `$NATS_SERVER_BIN`, else the one `make tools` installs, else PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let local = crate::workspace().join("tools/nats/bin/nats-server");
    if local.is_file() { local } else { PathBuf::from("nats-server") }
}

pub struct NatsServer {
    child: Child,
    url: String,
    port: u16,
    store: tempfile::TempDir,
    ports: tempfile::TempDir,
}

impl NatsServer {
    /// Start a server on a free port and wait until it listens.
    pub fn start() -> Self {
        Self::launch(None, &[])
    }

    /// Start a server on `port` (one a host was already told to use).
    pub fn start_on(port: u16) -> Self {
        Self::launch(Some(port), &[])
    }

    /// Start a server like [`NatsServer::start`] with `args` added to its command
    /// line, e.g. `["-c", "small.conf"]` for settings that have no flag (the
    /// harness's own flags win over the file). [`NatsServer::restart`] drops them.
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::launch(None, args)
    }

    fn launch(port: Option<u16>, args: &[&str]) -> Self {
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        let ports = tempfile::tempdir().expect("temp dir for the ports file");
        let (child, url) = spawn(store.path(), ports.path(), port, args);
        let port = port_of(&url);
        Self { child, url, port, store, ports }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kill the server (as a crash would) and start it again on the same port
    /// with the same JetStream data.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for entry in std::fs::read_dir(self.ports.path()).expect("ports dir").flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let (child, url) = spawn(self.store.path(), self.ports.path(), Some(self.port), &[]);
        self.child = child;
        self.url = url;
    }

    pub async fn client(&self) -> async_nats::Client {
        crate::within(Duration::from_secs(10), "connecting to nats-server", async_nats::connect(&self.url))
            .await
            .expect("connect to nats-server")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(store: &Path, ports: &Path, port: Option<u16>, args: &[&str]) -> (Child, String) {
    let port = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut child = Command::new(binary())
        .args(args)
        .args(["--addr", "127.0.0.1", "--port", &port, "--jetstream", "--store_dir"])
        .arg(store)
        .arg("--ports_file_dir")
        .arg(ports)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e} (run `make tools`)", binary().display()));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(url) = read_ports(ports) {
            return (child, url);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server {args:?} exited at startup: {status}");
        }
        assert!(Instant::now() < deadline, "nats-server {args:?} did not start within 15s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_ports(dir: &Path) -> Option<String> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.path().extension().is_some_and(|x| x == "ports"))?;
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).ok()?).ok()?;
    value.get("nats")?.get(0)?.as_str().map(str::to_owned)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in nats url")
}
