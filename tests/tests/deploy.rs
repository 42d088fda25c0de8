//! Deploys through the object store: three hosts on a 3-node cluster serve
//! `greeter` from `object:SWITCHYARD_PLUGINS/greeter`; `switchyard deploy`
//! swaps a version in under load on each (nothing lost), reports a version the
//! hosts refuse (the old one keeps serving, exit code non-zero) and a host that
//! is down, and `switchyard rollback` goes back through the history. Then bad
//! input: a module that is not wasm, a bucket that does not exist.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use switchyard_tests::host::binary;
use switchyard_tests::{Cluster, Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(120);

/// A host serving `greeter` from the bucket, in a queue group with the others.
/// Its `[plugins.greeter].config` makes the `faulty` plugin trap in `init`: a
/// version that passes `deploy`'s own check and is refused by every host.
fn host_config(url: &str) -> String {
    format!(
        r#"[nats]
url = "{url}"

[host]
cache_dir = ".switchyard/cache"

[plugins.greeter]
source = "object:SWITCHYARD_PLUGINS/greeter"
config = {{ trap_on_init = true }}

[[routes]]
name = "greet"
plugin = "greeter"
subjects = ["greet.>"]
queue = "greeters"
"#
    )
}

/// `switchyard ARGS --url URL`, from a folder without a runtime.toml (the CLI
/// checks modules with every default), bounded.
async fn cli(url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = tokio::process::Command::new(binary()).args(args).args(["--url", url, "--timeout", "60s"]).current_dir(dir.path()).output();
    within(WAIT, "the CLI", run).await.expect("run the CLI")
}

/// `switchyard ARGS --config CONFIG`, bounded: whether it succeeded, and what it printed.
async fn cli_with(config: &Path, args: &[&str]) -> (bool, String) {
    let run = tokio::process::Command::new(binary()).args(args).arg("--config").arg(config).output();
    let output = within(WAIT, "the CLI", run).await.expect("run the CLI");
    (output.status.success(), text(&output))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The version a host reports for a module: its content hash, 12 hex digits.
fn version(name: &str) -> String {
    let bytes = std::fs::read(plugin(name)).expect("plugin");
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&bytes))[..12].to_owned()
}

/// Requests to `greet.x` through every node, one after another until stopped:
/// each must be answered, and is counted by the version that answered it
/// (`echo` marks its replies with `echoed-by`, `noop` does not).
struct Requests {
    running: Arc<AtomicBool>,
    by_echo: Arc<AtomicU64>,
    by_noop: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<u64>,
}

impl Requests {
    fn start(clients: Vec<async_nats::Client>) -> Requests {
        let running = Arc::new(AtomicBool::new(true));
        let (by_echo, by_noop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let (running, by_echo, by_noop) = (running.clone(), by_echo.clone(), by_noop.clone());
            tokio::spawn(async move {
                let mut sent = 0u64;
                while running.load(Ordering::Relaxed) {
                    let client = &clients[sent as usize % clients.len()];
                    let reply = within(WAIT, "a reply", client.request("greet.x", "hi".into())).await.expect("answered: nothing lost");
                    let echoed = reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_some();
                    (if echoed { &by_echo } else { &by_noop }).fetch_add(1, Ordering::Relaxed);
                    sent += 1;
                }
                sent
            })
        };
        Requests { running, by_echo, by_noop, task }
    }

    /// Wait until `n` more requests than now were answered by `echo`, or by `noop`.
    async fn answered_by(&self, echo: bool, n: u64) {
        let counter = if echo { &self.by_echo } else { &self.by_noop };
        let before = counter.load(Ordering::Relaxed);
        eventually(WAIT, "requests answered by the version", || async { (counter.load(Ordering::Relaxed) >= before + n).then_some(()) })
            .await;
    }

    /// Stop; every request sent was answered once, by one version or the other.
    async fn finish(self) -> (u64, u64) {
        self.running.store(false, Ordering::Relaxed);
        let sent = within(WAIT, "the requester", self.task).await.expect("every request answered");
        let (echo, noop) = (self.by_echo.load(Ordering::Relaxed), self.by_noop.load(Ordering::Relaxed));
        assert_eq!(echo + noop, sent, "each request answered once");
        (echo, noop)
    }
}

/// Three hosts, each on its own node of a 3-node cluster, serve `greeter`
/// from the bucket, which `deploy` creates with three replicas. A deploy
/// under load reaches every host with nothing lost; a version that traps in
/// `init` is refused by every host and the one before keeps serving;
/// `rollback` goes back through the history; a deploy while a host is down
/// names it and updates the others, and the host picks the new version up
/// when it starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_on_a_cluster_reach_every_host_and_name_the_ones_that_refuse_or_are_down() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The CLI's own runtime.toml: the cluster, and the replicas new buckets get.
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(&cli_config, format!("[nats]\nurl = \"{}\"\n\n[dead_letter]\nreplicas = 3\n", cluster.urls())).expect("cli.toml");
    let deploy = |module: &'static str, timeout: &'static str| {
        let (module, cli_config) = (plugin(module), cli_config.clone());
        async move { cli_with(&cli_config, &["deploy", "greeter", module.to_str().expect("utf-8"), "--timeout", timeout]).await }
    };
    let serving = |out: &str, module: &str| out.matches(&format!(": serving greeter {}", version(module))).count();

    let (ok, out) = deploy("echo", "60s").await;
    assert!(ok && out.contains("no host serves `greeter` now"), "{out}");
    let js = async_nats::jetstream::new(cluster.client().await);
    let mut bucket = js.get_stream("OBJ_SWITCHYARD_PLUGINS").await.expect("the bucket's stream");
    assert_eq!(bucket.info().await.expect("info").config.num_replicas, 3, "created with [dead_letter] replicas");

    let configs: Vec<String> = (0..3).map(|i| host_config(&cluster.url(i))).collect();
    let mut hosts = futures::future::join_all(configs.iter().map(|c| Host::start(c))).await;
    let clients = futures::future::join_all((0..3).map(|i| async_nats::connect(cluster.url(i)))).await;
    let requests = Requests::start(clients.into_iter().map(|c| c.expect("a client")).collect());
    requests.answered_by(true, 20).await;

    // A good version under load: every host serves it, every request answered.
    let (ok, out) = deploy("noop", "60s").await;
    assert!(ok && serving(&out, "noop") == 3, "every host serves it:\n{out}");
    requests.answered_by(false, 20).await;
    let (echo, noop) = requests.finish().await;
    println!("deploy under load: {echo} requests answered by the old version, {noop} by the new one, none lost");

    // A version whose init traps with the hosts' config: refused by each, the
    // one before still serving.
    let (ok, out) = deploy("faulty", "60s").await;
    assert!(!ok && out.matches(": REFUSED: plugin `greeter`").count() == 3, "{out}");
    let reply = within(WAIT, "a reply", cluster.client().await.request("greet.x", "hi".into())).await.expect("still served");
    assert!(reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_none(), "noop still serves: {reply:?}");

    // Rollback goes through the history: noop (in place already), then echo.
    let (ok, out) = cli_with(&cli_config, &["rollback", "greeter"]).await;
    assert!(ok && out.contains(&format!("rolled greeter back to {}", version("noop"))), "{out}");
    let (ok, out) = cli_with(&cli_config, &["rollback", "greeter"]).await;
    assert!(ok && serving(&out, "echo") == 3, "{out}");

    // One host down (killed): named, and the others updated.
    let down = hosts.pop().expect("a third host").kill().await;
    let (ok, out) = deploy("noop", "10s").await;
    assert!(!ok, "a host did not answer: {out}");
    assert_eq!(serving(&out, "noop"), 2, "{out}");
    assert_eq!(out.matches(": no answer within 10s (registered, last renewed").count(), 1, "{out}");

    // Back, it serves what the bucket holds now; the fleet is whole again.
    hosts.push(Host::start_in(down, &configs[2]).await);
    let (ok, out) = cli_with(&cli_config, &["status"]).await;
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.split_whitespace().nth(1) == Some("greet")).collect();
    assert_eq!(rows.len(), 3, "a row per host:\n{out}");
    assert!(rows.iter().all(|row| row.contains(&format!("greeter@{}", version("noop")))), "{out}");
    assert!(!out.contains("versions:") && !out.contains("no answer"), "{out}");
    for host in hosts {
        assert!(host.stop().await.0.success());
    }
}

#[tokio::test]
async fn bad_deploys_are_clear_errors() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let not_wasm = switchyard_tests::modules::write_not_wasm(dir.path());
    let out = cli(nats.url(), &["deploy", "greeter", not_wasm.to_str().expect("utf-8")]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not deployed: plugin `greeter`"), "{}", text(&out));
    assert!(text(&out).contains("is not a wasm module"), "{}", text(&out));

    let out = cli(nats.url(), &["rollback", "greeter"]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("object store bucket `SWITCHYARD_PLUGINS`"), "{}", text(&out));

    // A host whose bucket does not exist yet says so, and serves once a deploy creates it.
    let host = Host::start_partial(&host_config(nats.url())).await;
    assert!(host.output().contains("ready: 0 of 1"), "{}", host.output());
    assert!(host.output().contains("object store bucket `SWITCHYARD_PLUGINS` not found"), "{}", host.output());
    let out = cli(nats.url(), &["deploy", "greeter", plugin("echo").to_str().expect("utf-8")]).await;
    assert!(out.status.success(), "{}", text(&out));
    let client = nats.client().await;
    let reply =
        eventually(WAIT, "the route to start once the bucket is there", || async { client.request("greet.x", "hi".into()).await.ok() })
            .await;
    assert_eq!(&reply.payload[..], b"hi");
}
