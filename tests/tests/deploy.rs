//! Deploys through the object store: two hosts serve `greeter` from
//! `object:SWITCHYARD_PLUGINS/greeter`; `switchyard deploy` swaps a version in
//! under load on both (nothing lost), reports a version the hosts refuse (the
//! old one keeps serving, exit code non-zero), and `switchyard rollback` goes
//! back through the history.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use switchyard_tests::host::binary;
use switchyard_tests::{Host, NatsServer, plugin, within};

const WAIT: Duration = Duration::from_secs(120);

/// `echo` marks its replies with `echoed-by`; `noop` (the second version) does not.
///
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

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The version a host reports for a module: its content hash, 12 hex digits.
fn version(name: &str) -> String {
    let bytes = std::fs::read(plugin(name)).expect("plugin");
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&bytes))[..12].to_owned()
}

#[tokio::test]
async fn deploys_reach_every_host_refusals_are_reported_and_rollback_goes_back() {
    let nats = NatsServer::start();
    let url = nats.url().to_owned();
    let echo = plugin("echo");
    let noop = plugin("noop");
    let faulty = plugin("faulty");

    // Before any host: stored, and hosts that start fetch it.
    let first = cli(&url, &["deploy", "greeter", echo.to_str().expect("utf-8")]).await;
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("no host serves `greeter` now"), "{}", text(&first));
    let config = host_config(&url);
    let (a, b) = tokio::join!(Host::start(&config), Host::start(&config));

    // Requests all along: each is answered, by one version or the other.
    let client = nats.client().await;
    let running = Arc::new(AtomicBool::new(true));
    let (echoed, acked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (running, echoed, acked) = (running.clone(), echoed.clone(), acked.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            while running.load(Ordering::Relaxed) {
                let reply = within(WAIT, "a reply", client.request("greet.x", "hi".into())).await.expect("answered: nothing lost");
                let by_echo = reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_some();
                let counter = if by_echo { &echoed } else { &acked };
                counter.fetch_add(1, Ordering::Relaxed);
                sent += 1;
            }
            sent
        })
    };
    switchyard_tests::eventually(WAIT, "requests answered by the first version", || async {
        (echoed.load(Ordering::Relaxed) >= 20).then_some(())
    })
    .await;

    let second = cli(&url, &["deploy", "greeter", noop.to_str().expect("utf-8")]).await;
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert_eq!(out.matches(&format!(": serving greeter {}", version("noop"))).count(), 2, "both hosts serve it: {out}");
    let before = acked.load(Ordering::Relaxed);
    switchyard_tests::eventually(WAIT, "requests answered by the new version", || async {
        (acked.load(Ordering::Relaxed) >= before + 20).then_some(())
    })
    .await;
    running.store(false, Ordering::Relaxed);
    let sent = within(WAIT, "the requester", load).await.expect("every request answered");
    assert_eq!(echoed.load(Ordering::Relaxed) + acked.load(Ordering::Relaxed), sent);

    // A version the hosts refuse (its init traps with their config): reported,
    // and the one before keeps serving.
    let refused = cli(&url, &["deploy", "greeter", faulty.to_str().expect("utf-8")]).await;
    let out = text(&refused);
    assert!(!refused.status.success(), "{out}");
    assert_eq!(out.matches(": REFUSED: plugin `greeter`").count(), 2, "{out}");
    let reply = within(WAIT, "a reply", nats.client().await.request("greet.x", "hi".into())).await.expect("still served");
    assert!(reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_none(), "the new version still serves: {reply:?}");

    // Rollback: the version deployed before the refused one, then the one before that.
    let back = cli(&url, &["rollback", "greeter"]).await;
    assert!(back.status.success(), "{}", text(&back));
    assert!(text(&back).contains(&format!("rolled greeter back to {}", version("noop"))), "{}", text(&back));
    let back = cli(&url, &["rollback", "greeter"]).await;
    let out = text(&back);
    assert!(back.status.success(), "{out}");
    assert_eq!(out.matches(&format!(": serving greeter {}", version("echo"))).count(), 2, "{out}");
    let reply = within(WAIT, "a reply", nats.client().await.request("greet.x", "hi".into())).await.expect("served");
    assert!(reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_some(), "the first version serves again: {reply:?}");
    drop((a, b));
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
    let reply = switchyard_tests::eventually(WAIT, "the route to start once the bucket is there", || async {
        client.request("greet.x", "hi".into()).await.ok()
    })
    .await;
    assert_eq!(&reply.payload[..], b"hi");
}
