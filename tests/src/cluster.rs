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
/// A healthy fresh cluster elects in a few seconds, even on a loaded machine.
const ELECTION: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    store: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    name: String,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Start three nodes and wait until JetStream has a meta leader.
    ///
    /// A port picked free may be taken before the node binds it (another
    /// test's outgoing connection, say): the node then exits, at once or
    /// (its route port taken) just after it opened its client port. The
    /// cluster is started again on fresh ports, a few times.
    pub async fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Self::on_fresh_ports();
            match cluster.attempt().await {
                Ok(()) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the cluster did not start in {START_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    fn on_fresh_ports() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        // Its own cluster name: a node of another test's cluster that comes
        // to listen on a port this one routes to is refused, not merged.
        let name = format!("switchyard-test-{}", dir.path().file_name().expect("temp dir name").to_string_lossy());
        let nodes = (0..NODES)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: free_port(),
                cluster_port: free_port(),
                store: dir.path().join(format!("n{}", i + 1)),
                child: None,
            })
            .collect();
        Self { name, nodes, _dir: dir }
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

    /// Spawn every node and wait (bounded) until JetStream answers through
    /// the cluster: a meta leader is elected. A fresh cluster elects only
    /// once every node has joined, so a node that exits (its route port
    /// taken) fails the attempt at once. The error quotes the nodes' logs.
    async fn attempt(&mut self) -> Result<(), String> {
        (0..NODES).try_for_each(|i| self.spawn(i))?;
        let js = jetstream::new(self.client().await);
        let deadline = tokio::time::Instant::now() + ELECTION;
        loop {
            if let Some(i) = (0..NODES).find(|&i| self.nodes[i].child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())) {
                return Err(format!("node {} exited; its log ends:\n  {}", self.nodes[i].name, self.log_tail(i)));
            }
            if tokio::time::timeout_at(deadline, js.query_account()).await.is_ok_and(|answer| answer.is_ok()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> =
                    (0..NODES).map(|i| format!("node {}'s log ends:\n  {}", self.nodes[i].name, self.log_tail(i))).collect();
                return Err(format!("no JetStream meta leader within {ELECTION:?}; {}", logs.join("\n")));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The last lines of node `i`'s log.
    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].store.with_extension("log")).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(8).collect();
        tail.reverse();
        tail.join("\n  ")
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
        let child = command(node, &self.name, &routes.join(","))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (run `make tools`)", binary().display()));
        let child = node.child.insert(child);
        let port = node.client_port;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let how = loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = child.try_wait().ok().flatten() {
                break format!("exited ({status})");
            }
            if std::time::Instant::now() >= deadline {
                break "did not listen within 15 s".to_owned();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let failure = format!("node {} on port {port} {how}; its log ends:\n  {}", self.nodes[i].name, self.log_tail(i));
        self.kill(i);
        Err(failure)
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

fn command(node: &Node, cluster_name: &str, routes: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["--addr", "127.0.0.1", "--port", &node.client_port.to_string()])
        .args(["--server_name", &node.name, "--cluster_name", cluster_name])
        .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port), "--routes", routes])
        .args(["--jetstream", "--store_dir"])
        .arg(store_dir(&node.store))
        .stdin(Stdio::null())
        .arg("--log")
        .arg(node.store.with_extension("log"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A node whose route port is taken exits after opening its client
    /// port; the attempt fails at once, naming why, instead of waiting for
    /// an election that cannot happen (seen in CI).
    #[tokio::test]
    async fn a_node_that_cannot_listen_for_routes_fails_the_attempt_at_once() {
        let mut cluster = Cluster::on_fresh_ports();
        let _taken = TcpListener::bind(("127.0.0.1", cluster.nodes[2].cluster_port)).expect("take n3's route port");
        let failure = crate::within(Duration::from_secs(20), "the attempt to fail", cluster.attempt())
            .await
            .expect_err("n3 cannot listen for routes");
        assert!(failure.contains("node n3") && failure.contains("exited") && failure.contains("router port"), "{failure}");
    }
}
