//! Hot reload in production: plugin versions swapped under load with zero loss,
//! bad versions refused, failing versions rolled back, config changes applied
//! route by route, and editor-style saves picked up once each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, create_stream, pending, publish_many};
use switchyard_tests::modules::{replace_file, with_custom_section};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(120);

const JOBS_ROUTE: &str = r#"
[[routes]]
name = "jobs"
plugin = "faulty"
stream = "JOBS"
concurrency = 4
"#;

const ASK_ROUTE: &str = r#"
[[routes]]
name = "ask"
plugin = "faulty"
subjects = ["ask.*"]
concurrency = 2
"#;

/// runtime.toml for a host whose faulty plugin lives at `dir/faulty.wasm`.
fn config(url: &str, dir: &Path, watch: bool, plugin_config: &str, routes: &str) -> String {
    format!(
        r#"{}watch = {watch}

[[streams]]
name = "JOBS"
subjects = ["jobs.>"]
retention = "workqueue"

[plugins.faulty]
path = "{}"
publish = ["done.>", "seen.>"]
rollout = {{ messages = 10, max_failure_rate = 0.2 }}
config = {{ publish = ["done.x", "seen.x"], {plugin_config} }}
{routes}"#,
        preamble(url),
        dir.join("faulty.wasm").display()
    )
}

/// A working copy of the faulty plugin in its own folder.
fn plugin_dir() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read(plugin("faulty")).expect("read faulty.wasm");
    let path = dir.path().join("faulty.wasm");
    std::fs::write(&path, &original).expect("copy plugin");
    (dir, path, original)
}

/// Ask every host to reload now; the report of the (only) host.
async fn reload(client: &async_nats::Client) -> serde_json::Value {
    let answer = within(WAIT, "a reload report", client.request("switchyard.control.reload", "".into())).await.expect("reload");
    serde_json::from_slice(&answer.payload).expect("report json")
}

/// Count `seen.>` messages per `n`, with the version tag of each, until told
/// the test is done and then the subject is quiet for 3 s (a slow swap on a
/// busy machine must not end the count early).
fn watch_seen(
    mut sub: async_nats::Subscriber,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<HashMap<u64, Vec<String>>> {
    tokio::spawn(async move {
        let mut seen: HashMap<u64, Vec<String>> = HashMap::new();
        let mut finishing = false;
        loop {
            let msg = if finishing {
                match tokio::time::timeout(Duration::from_secs(3), sub.next()).await {
                    Ok(Some(msg)) => msg,
                    _ => break,
                }
            } else {
                tokio::select! {
                    _ = &mut done => {
                        finishing = true;
                        continue;
                    }
                    msg = sub.next() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                }
            };
            let n = serde_json::from_slice::<serde_json::Value>(&msg.payload).ok().and_then(|b| b["n"].as_u64());
            let tag = msg.headers.as_ref().and_then(|h| h.get("faulty-tag")).map(|v| v.to_string()).unwrap_or_default();
            if let Some(n) = n {
                seen.entry(n).or_default().push(tag);
            }
        }
        seen
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_under_load_lose_nothing() {
    const JOBS: u64 = 50_000;
    const REQUESTS: usize = 20_000;
    let nats = NatsServer::start();
    let (dir, wasm, original) = plugin_dir();
    let routes = format!("{JOBS_ROUTE}{ASK_ROUTE}");
    let host = Host::start(&config(nats.url(), dir.path(), false, "tag = \"v0\"", &routes)).await;
    let watcher = async_nats::ConnectOptions::new().subscription_capacity(1 << 22).connect(nats.url()).await.expect("connect");
    let (done, finishing) = tokio::sync::oneshot::channel();
    let seen = watch_seen(watcher.subscribe("seen.>").await.expect("subscribe"), finishing);
    watcher.flush().await.expect("flush");
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;

    // Published a twentieth before each swap and the last after it, so the
    // load spans the versions however fast the host is.
    const CHUNK: u64 = JOBS / 21;
    let publish_chunk = |chunk: u64| {
        let js = js.clone();
        let (first, last) = (chunk * CHUNK, if chunk == 20 { JOBS } else { (chunk + 1) * CHUNK });
        async move { publish_many(&js, "jobs.n", (last - first) as usize, |i| format!(r#"{{"n":{}}}"#, first + i as u64).into_bytes()).await }
    };
    let requester = {
        let client = client.clone();
        tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::with_capacity(REQUESTS), 0usize);
            for i in 0..REQUESTS {
                let started = Instant::now();
                let body = format!(r#"{{"action":"reply","publish":[],"r":{i}}}"#);
                match tokio::time::timeout(Duration::from_secs(5), client.request("ask.x", body.clone().into())).await {
                    Ok(Ok(reply)) if reply.payload == body.as_bytes() => latencies.push(started.elapsed()),
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        })
    };

    let mut swap_times = Vec::new();
    for version in 1..=20 {
        publish_chunk(version - 1).await;
        let tag = format!("v{version}");
        replace_file(&wasm, &with_custom_section(&original, "switchyard-test", tag.as_bytes()));
        let text = config(nats.url(), dir.path(), false, &format!("tag = \"{tag}\""), &routes);
        replace_file(&host.dir().join("runtime.toml"), text.as_bytes());
        let started = Instant::now();
        let report = reload(&client).await;
        swap_times.push(started.elapsed());
        let changes = report["changes"].to_string();
        assert!(report["ok"] == true && changes.contains("plugin `faulty`: version"), "swap {version}: {report}");
        assert!(report["refused"].as_array().is_some_and(Vec::is_empty), "swap {version}: {report}");
        tokio::time::sleep(Duration::from_millis(150)).await; // let traffic flow between swaps
    }

    publish_chunk(20).await;
    let (mut latencies, failures) = within(WAIT, "the requester", requester).await.expect("requester");
    eventually(WAIT, "every job handled", || async { (count(&js, "DONE").await >= JOBS).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    assert_eq!(count(&js, "DONE").await, JOBS, "zero JetStream loss");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "zero dead letters caused by reloads");
    assert_eq!(failures, 0, "core requests never failed: the subscription is not touched by a version swap");
    let (_, output) = host.stop().await;
    assert!(output.contains("reloads_applied=20"), "{output}");
    let _ = done.send(());

    let seen = within(WAIT, "the watcher", seen).await.expect("watcher");
    let twice: Vec<_> = seen.iter().filter(|(_, tags)| tags.len() != 1).collect();
    assert_eq!(seen.len() as u64, JOBS, "every job seen");
    assert!(twice.is_empty(), "each job handled by exactly one version: {:?}", &twice[..twice.len().min(5)]);
    let versions: std::collections::BTreeSet<&String> = seen.values().flatten().collect();
    assert!(versions.len() > 10, "the load spanned the versions: {versions:?}");

    latencies.sort();
    swap_times.sort();
    eprintln!(
        "reload under load: swap request→serving p50 {:?} max {:?}; request latency p50 {:?} p99 {:?} max {:?}",
        percentile(&swap_times, 0.5),
        swap_times[swap_times.len() - 1],
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );
}

#[tokio::test]
async fn a_bad_version_is_refused_and_the_old_one_serves_on() {
    let nats = NatsServer::start();
    let (dir, wasm, _) = plugin_dir();
    let host = Host::start(&config(nats.url(), dir.path(), false, "tag = \"good\"", JOBS_ROUTE)).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;

    publish_many(&js, "jobs.n", 500, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await;
    replace_file(&wasm, b"\0asm but not really");
    let report = reload(&client).await;
    assert_eq!(report["ok"], true, "the config itself is fine");
    assert!(report["refused"].to_string().contains("is not a wasm module"), "{report}");
    publish_many(&js, "jobs.n", 500, |i| format!(r#"{{"n":{}}}"#, 500 + i).into_bytes()).await;
    eventually(WAIT, "all 1,000 handled by the old version", || async { (count(&js, "DONE").await == 1000).then_some(()) }).await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0);

    // A config with errors is refused whole, too.
    replace_file(&host.dir().join("runtime.toml"), b"[[routes]]\nname = 1\n");
    let report = reload(&client).await;
    assert_eq!(report["ok"], false, "{report}");
    let (_, output) = host.stop().await;
    assert!(output.contains("reloads_refused=2"), "refusals are counted:\n{output}");
}

#[tokio::test]
async fn a_version_that_fails_is_rolled_back_and_its_messages_retried() {
    let nats = NatsServer::start();
    let (dir, _, _) = plugin_dir();
    let route = format!("{JOBS_ROUTE}retry = {{ delays = [\"100ms\"] }}\nmax_deliver = 3\n");
    let host = Host::start(&config(nats.url(), dir.path(), false, "tag = \"good\"", &route)).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;

    // The new version fails every message (its config says so).
    let bad = config(nats.url(), dir.path(), false, "tag = \"bad\", action = \"retry\"", &route);
    replace_file(&host.dir().join("runtime.toml"), bad.as_bytes());
    assert!(reload(&client).await["changes"].to_string().contains("plugin `faulty`: version"));
    publish_many(&js, "jobs.n", 100, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await;

    eventually(WAIT, "all 100 handled after the rollback", || async { (count(&js, "DONE").await == 100).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "the failed messages were retried, not dead-lettered");
    let status = within(WAIT, "status", client.request("switchyard.control.status", "".into())).await.expect("status");
    let status: serde_json::Value = serde_json::from_slice(&status.payload).expect("json");
    assert_eq!(status["routes"][0]["rollbacks"], 1, "{status}");
    let (_, output) = host.stop().await;
    let rolled = output.lines().find(|l| l.contains("rolled back")).unwrap_or_else(|| panic!("no rollback line:\n{output}"));
    assert!(rolled.contains("3 of the first 3 messages failed"), "rolled back within N messages: {rolled}");
}

#[tokio::test]
async fn config_changes_apply_route_by_route_while_traffic_flows() {
    let nats = NatsServer::start();
    let (dir, _, _) = plugin_dir();
    let before = format!("{JOBS_ROUTE}{ASK_ROUTE}");
    let host = Host::start(&config(nats.url(), dir.path(), false, "tag = \"a\"", &before)).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;
    let reply = within(WAIT, "ask", client.request("ask.x", r#"{"action":"reply","publish":[]}"#.into())).await;
    assert!(reply.is_ok());

    let traffic = {
        let js = js.clone();
        tokio::spawn(async move { publish_many(&js, "jobs.n", 5000, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await })
    };
    // Remove `ask`, add `extra`, and change a limit on `jobs`.
    let after = format!(
        "{}rate_limit = {{ rate = 100000 }}\n\n[[routes]]\nname = \"extra\"\nplugin = \"faulty\"\nsubjects = [\"extra.*\"]\n",
        JOBS_ROUTE
    );
    replace_file(&host.dir().join("runtime.toml"), config(nats.url(), dir.path(), false, "tag = \"a\"", &after).as_bytes());
    let report = reload(&client).await;
    let changes = report["changes"].to_string();
    for expected in ["route `jobs` replaced", "route `extra` added", "route `ask` removed (drained)"] {
        assert!(changes.contains(expected), "{expected} in {report}");
    }
    within(WAIT, "traffic", traffic).await.expect("publisher");
    eventually(WAIT, "every job handled across the change", || async { (count(&js, "DONE").await == 5000).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    let extra = within(WAIT, "extra", client.request("extra.x", r#"{"action":"reply","publish":[]}"#.into())).await;
    assert_eq!(extra.expect("extra answers").payload.as_ref(), br#"{"action":"reply","publish":[]}"#);
    let gone = within(WAIT, "ask", client.request("ask.x", r#"{"action":"reply","publish":[]}"#.into())).await;
    assert!(gone.is_err(), "the removed route no longer answers");
    host.stop().await;
}

#[tokio::test]
async fn editor_style_saves_are_each_picked_up_once() {
    let nats = NatsServer::start();
    let (dir, wasm, original) = plugin_dir();
    // The config names a symlink, so a deploy can swap what it points to.
    let link = dir.path().join("current.wasm");
    std::os::unix::fs::symlink(&wasm, &link).expect("symlink");
    let text = config(nats.url(), dir.path(), true, "tag = \"a\"", JOBS_ROUTE).replace("faulty.wasm\"", "current.wasm\"");
    let host = Host::start(&text).await;
    let loads = || host.output().matches("new plugin version loaded").count();

    // 1. Written in place.
    std::fs::write(&wasm, with_custom_section(&original, "t", b"in-place")).expect("write");
    eventually(WAIT, "the in-place save", || async { (loads() == 1).then_some(()) }).await;
    // 2. Written to a temporary file, then renamed over the original.
    replace_file(&wasm, &with_custom_section(&original, "t", b"renamed"));
    eventually(WAIT, "the rename", || async { (loads() == 2).then_some(()) }).await;
    // 3. The symlink swapped to a new file.
    let next = dir.path().join("faulty-v3.wasm");
    std::fs::write(&next, with_custom_section(&original, "t", b"symlinked")).expect("write v3");
    let tmp_link = dir.path().join("current.wasm.new");
    std::os::unix::fs::symlink(&next, &tmp_link).expect("symlink");
    std::fs::rename(&tmp_link, &link).expect("swap symlink");
    eventually(WAIT, "the symlink swap", || async { (loads() == 3).then_some(()) }).await;

    // Once each: nothing more arrives after a quiet spell.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(loads(), 3, "each save loaded exactly once:\n{}", host.output());
    host.stop().await;
}

#[tokio::test]
async fn sighup_reloads() {
    let nats = NatsServer::start();
    let (dir, wasm, original) = plugin_dir();
    let host = Host::start(&config(nats.url(), dir.path(), false, "tag = \"a\"", JOBS_ROUTE)).await;
    replace_file(&wasm, &with_custom_section(&original, "t", b"hup"));
    host.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(WAIT, "the reload on SIGHUP", || async {
        host.output().lines().any(|l| l.contains("reload applied") && l.contains("SIGHUP")).then_some(())
    })
    .await;
    let (status, _) = host.stop().await;
    assert!(status.success());
}
