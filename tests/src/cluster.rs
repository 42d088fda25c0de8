//! A real 3-node nats-server cluster on loopback: free ports, JetStream on,
//! a store per node, every node killed on Drop. Nodes can be killed (-9),
//! restarted on the same ports and data, or paused with SIGSTOP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;

use crate::nats::binary;

const NODES: usize = 3;
const START_ATTEMPTS: usize = 3;

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    store: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Start three nodes and wait until JetStream has a meta leader.
    ///
    /// A port picked free may be taken before the node binds it (another
    /// test's outgoing connection, say), and the node then exits at once:
    /// the cluster is started again on fresh ports, a few times.
    pub async fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Self::on_fresh_ports();
            match (0..NODES).try_for_each(|i| cluster.spawn(i)) {
                Ok(()) => {
                    cluster.ready().await;
                    return cluster;
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the cluster did not start in {START_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    fn on_fresh_ports() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let nodes = (0..NODES)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: free_port(),
                cluster_port: free_port(),
                store: dir.path().join(format!("n{}", i + 1)),
                child: None,
            })
            .collect();
        Self { nodes, _dir: dir }
    }

    /// The URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Every node's URL, comma separated (as `nats.url` takes them).
    pub fn urls(&self) -> String {
        (0..NODES).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// The index of the node named `name` ("n2" → 1).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// A client that may connect to any node that is up.
    pub async fn client(&self) -> async_nats::Client {
        let urls: Vec<String> = (0..NODES).map(|i| self.url(i)).collect();
        crate::within(Duration::from_secs(10), "connecting to the cluster", async_nats::connect(urls))
            .await
            .expect("connect to the cluster")
    }

    /// Kill node `i` as a crash would (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start node `i` again on its ports and its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i).unwrap_or_else(|failure| panic!("{failure}"));
    }

    /// Pause (SIGSTOP) or resume (SIGCONT) node `i`.
    pub fn pause(&self, i: usize, paused: bool) {
        let signal = if paused { nix::sys::signal::Signal::SIGSTOP } else { nix::sys::signal::Signal::SIGCONT };
        if let Some(child) = &self.nodes[i].child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// Wait (bounded) until JetStream answers through the cluster: a meta
    /// leader is elected.
    pub async fn ready(&self) {
        let js = jetstream::new(self.client().await);
        crate::eventually(Duration::from_secs(30), "the cluster to elect a JetStream meta leader", || async {
            js.query_account().await.ok().map(|_| ())
        })
        .await;
    }

    /// The index of the node leading `stream`'s replicas.
    pub async fn stream_leader(&self, js: &jetstream::Context, stream: &str) -> usize {
        crate::eventually(Duration::from_secs(30), &format!("a leader for stream `{stream}`"), || async {
            let mut s = js.get_stream(stream).await.ok()?;
            let info = s.info().await.ok()?;
            let leader = info.cluster.as_ref()?.leader.clone()?;
            self.index_of(&leader)
        })
        .await
    }

    /// Start node `i` and wait (bounded) until it accepts connections; the
    /// error names the node and quotes its log when it exited or hung.
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let routes: Vec<String> = self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.cluster_port)).collect();
        let node = &mut self.nodes[i];
        let log = node.store.with_extension("log");
        let child = command(node, &routes.join(","), &log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (run `make tools`)", binary().display()));
        let child = node.child.insert(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", node.client_port)).is_err() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() >= deadline {
                let how = exited.map_or_else(|| "did not listen within 15 s".to_owned(), |status| format!("exited ({status})"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let failure = format!("node {} on port {} {how}; its log ends:\n  {}", node.name, node.client_port, tail.join("\n  "));
                self.kill(i);
                return Err(failure);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..NODES {
            self.pause(i, false);
            self.kill(i);
        }
    }
}

fn command(node: &Node, routes: &str, log: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["--addr", "127.0.0.1", "--port", &node.client_port.to_string()])
        .args(["--server_name", &node.name, "--cluster_name", "switchyard-test"])
        .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port), "--routes", routes])
        .args(["--jetstream", "--store_dir"])
        .arg(store_dir(&node.store))
        .stdin(Stdio::null())
        .arg("--log")
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn store_dir(path: &Path) -> &Path {
    std::fs::create_dir_all(path).expect("node store dir");
    path
}

/// A port nothing listens on now (the OS picks it; it is released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}
