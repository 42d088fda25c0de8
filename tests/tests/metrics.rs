//! The admin listener against a real nats-server: `/metrics` counts a known
//! mix of traffic exactly, as a Prometheus parser reads it; `/readyz` follows
//! startup, a lost consumer and a graceful stop; a port in use is a clear error.

use std::time::Duration;

use async_nats::jetstream;
use switchyard_tests::admin::{Scrape, get, scrape};
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{drained, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(60);

/// A JetStream route and two core routes on the faulty plugin: one behind a
/// breaker, one behind a rate limit.
fn config(url: &str) -> String {
    faulty_jobs(url, "", "max_deliver = 3\nretry = { delays = [\"50ms\"] }")
        + r#"
[[routes]]
name = "fragile"
plugin = "faulty"
subjects = ["fragile.>"]
concurrency = 1
retry = { attempts = 1 }
breaker = { consecutive_failures = 2, open_for = "10m" }

[[routes]]
name = "limited"
plugin = "faulty"
subjects = ["limited.>"]
concurrency = 1
rate_limit = { rate = 1, per = "10m", max_wait = "50ms" }
"#
}

fn messages(s: &Scrape, route: &str, outcome: &str) -> f64 {
    s.value("switchyard_messages_total", &[("route", route), ("outcome", outcome)])
}

#[tokio::test]
async fn metrics_count_a_known_mix_of_traffic_exactly() {
    let nats = NatsServer::start();
    let host = Host::start(&config(nats.url())).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());

    // JetStream: 5 acked, 2 that fail once then ack, 3 rejected, 1 that traps on
    // each of its 3 deliveries and is dead-lettered.
    publish_many(&js, "jobs.ok", 5, |_| br#"{"action":"ack"}"#.to_vec()).await;
    publish_many(&js, "jobs.flaky", 2, |_| br#"{"fail_times":1}"#.to_vec()).await;
    publish_many(&js, "jobs.bad", 3, |_| br#"{"action":"reject"}"#.to_vec()).await;
    publish_many(&js, "jobs.trap", 1, |_| br#"{"action":"trap"}"#.to_vec()).await;
    // Core: two failures open the breaker; the third request is refused by it.
    for _ in 0..3 {
        let reply = within(WAIT, "a reply from `fragile`", client.request("fragile.x", r#"{"action":"retry"}"#.into())).await;
        reply.expect("an error reply, not a timeout");
    }
    // Core: a rate of one message per ten minutes; the second and third are shed.
    for _ in 0..3 {
        let reply = within(WAIT, "a reply from `limited`", client.request("limited.x", r#"{"action":"ack"}"#.into())).await;
        reply.expect("a reply or an error reply");
    }
    drained(&js, "JOBS", "jobs").await;

    let expected: &[(&str, &str, f64)] = &[
        ("jobs", "ack", 7.0),
        ("jobs", "retry", 4.0),
        ("jobs", "reject", 3.0),
        ("jobs", "dead_letter", 4.0),
        ("jobs", "plugin_error", 3.0),
        ("jobs", "reply", 0.0),
        ("fragile", "dead_letter", 2.0),
        ("fragile", "breaker_open", 1.0),
        ("fragile", "retry", 0.0),
        ("limited", "reply", 1.0),
        ("limited", "shed", 2.0),
    ];
    let s = eventually(WAIT, "the counters to match the traffic", || async {
        let s = scrape(host.admin_url()).await;
        expected.iter().all(|(route, outcome, n)| messages(&s, route, outcome) == *n).then_some(s)
    })
    .await;
    assert_eq!(s.value("switchyard_dead_letters_total", &[("route", "jobs")]), 4.0);
    assert_eq!(s.value("switchyard_plugin_traps_total", &[("plugin", "faulty"), ("kind", "trap")]), 3.0);
    assert_eq!(s.value("switchyard_breaker_state", &[("route", "fragile")]), 2.0, "open");
    assert_eq!(s.value("switchyard_in_flight", &[("route", "jobs")]), 0.0);
    assert_eq!(s.value("switchyard_nats_connected", &[]), 1.0);
    // One handler call per attempt: 5 + 2·2 + 3 + 3 on `jobs`.
    assert_eq!(s.value("switchyard_handler_duration_seconds_count", &[("route", "jobs")]), 15.0);
    assert!(s.get("switchyard_plugin_info", &[("plugin", "faulty"), ("version", &version(&host))]).is_some(), "{:?}", s.names());
    assert!(s.value("process_resident_memory_bytes", &[]) > 0.0);
    let stop = host.stop().await;
    assert!(stop.0.success(), "{}", stop.1);
}

/// The version the host reports for `faulty`, from its log line.
fn version(host: &Host) -> String {
    let output = host.output();
    let line = output.lines().find(|l| l.contains("plugin loaded plugin=faulty")).expect("a plugin loaded line");
    line.split("version=").nth(1).expect("a version").trim().to_owned()
}

#[tokio::test]
async fn consumer_info_is_refreshed_into_the_lag_gauges() {
    let nats = NatsServer::start();
    let config = config(nats.url()).replace("stream = \"JOBS\"\n", "stream = \"JOBS\"\nconcurrency = 1\n")
        + "\n[admin]\nconsumer_info_interval = \"200ms\"\n";
    let host = Host::start(&config).await;
    let js = jetstream::new(nats.client().await);
    // One message sleeps while nine wait behind it (concurrency 1, batch 1000):
    // delivered and unacked, then acked one by one.
    publish_many(&js, "jobs.slow", 10, |_| br#"{"sleep_ms":300}"#.to_vec()).await;
    eventually(WAIT, "ack pending to show the held messages", || async {
        let s = scrape(host.admin_url()).await;
        (s.value("switchyard_consumer_ack_pending", &[("route", "jobs")]) >= 2.0).then_some(())
    })
    .await;
    drained(&js, "JOBS", "jobs").await;
    eventually(WAIT, "ack pending to fall to zero", || async {
        let s = scrape(host.admin_url()).await;
        (s.get("switchyard_consumer_ack_pending", &[("route", "jobs")]) == Some(0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn readiness_follows_startup_a_lost_consumer_and_shutdown() {
    // The host starts before its NATS server: up but not ready, and says why.
    let nats_port = free_port();
    let admin_port = free_port();
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runtime.toml");
    std::fs::write(&path, config(&nats_url)).expect("write config");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut child = tokio::process::Command::new(switchyard_tests::host::binary())
        .args(["run", path.to_str().expect("utf-8 path"), "--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn switchyard");
    eventually(WAIT, "/readyz to answer while NATS is not up", || async { reqwest::get(format!("{admin}/readyz")).await.ok().map(|_| ()) })
        .await;
    let (status, body) = get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("starting"), "{body}");
    let (status, body) = get(&admin, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected to NATS"), "{body}");

    let nats = NatsServer::start_on(nats_port);
    eventually(WAIT, "/readyz to turn 200", || async { (get(&admin, "/readyz").await.0 == 200).then_some(()) }).await;
    assert_eq!(get(&admin, "/healthz").await.0, 200);

    // The stream goes (and the consumer with it): the route is down until both are back.
    let js = jetstream::new(nats.client().await);
    js.delete_stream("JOBS").await.expect("delete the stream");
    let body = eventually(WAIT, "/readyz to turn 503 for the lost consumer", || async {
        let (status, body) = get(&admin, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("\"jobs\""), "names the route: {body}");
    assert_eq!(get(&admin, "/healthz").await.0, 200, "a route down is not a reason to restart the host");
    switchyard_tests::js::create_stream(&js, "JOBS", &["jobs.>"]).await;
    eventually(WAIT, "/readyz to turn 200 once the consumer is back", || async { (get(&admin, "/readyz").await.0 == 200).then_some(()) })
        .await;

    // A graceful stop drains a message in flight: not ready meanwhile.
    let client = nats.client().await;
    let request = tokio::spawn(async move { client.request("fragile.slow", r#"{"sleep_ms":3000}"#.into()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let body = eventually(WAIT, "/readyz to turn 503 while draining", || async {
        let (status, body) = get(&admin, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body.contains("draining"), "{body}");
    let reply = within(WAIT, "the in-flight request's reply", request).await.expect("join");
    assert!(reply.is_ok(), "the message in flight is finished: {reply:?}");
    let exit = within(WAIT, "the host to exit", child.wait()).await.expect("wait");
    assert!(exit.success());
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let config = format!("{}[admin]\nlisten = \"{addr}\"\n", preamble("nats://127.0.0.1:1"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("runtime.toml"), config).expect("write config");
    let output = std::process::Command::new(switchyard_tests::host::binary())
        .args(["run", "runtime.toml"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("error: [admin] listen: cannot listen on {addr}")), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
