//! `switchyard status` and `switchyard top --once` against a running host: each
//! route's version, what is in flight, msg/s, error rate and p50/p99 over the
//! last ten seconds, its breaker and (JetStream) its consumer's pending count.

use std::time::Duration;

use async_nats::jetstream;
use switchyard_tests::host::{binary, preamble};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(30);

/// Run the CLI: whether it succeeded, its stdout, and its stderr.
async fn switchyard(args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(binary());
    for name in ["SWITCHYARD_CONTROL_SEED", "SWITCHYARD_CONTROL_SEED_FILE", "SWITCHYARD_INBOX_PREFIX", "SWITCHYARD_CONFIG"] {
        command.env_remove(name);
    }
    command.args(args).kill_on_drop(true);
    let output = within(WAIT, "the switchyard command", command.output()).await.expect("run switchyard");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A core route with a breaker and a JetStream route, both on echo.
fn config(url: &str) -> String {
    format!(
        r#"{}[admin]
consumer_info_interval = "200ms"

[plugins.echo]
path = "{}"

[[streams]]
name = "JOBS"
subjects = ["jobs.>"]

[[routes]]
name = "greet"
plugin = "echo"
subjects = ["greet.>"]
breaker = {{ consecutive_failures = 5 }}

[[routes]]
name = "jobs"
plugin = "echo"
stream = "JOBS"
"#,
        preamble(url),
        plugin("echo").display()
    )
}

/// Send `n` requests to the greet route, each answered.
async fn requests(client: &async_nats::Client, n: usize) {
    for i in 0..n {
        let reply = within(WAIT, "an echo reply", client.request(format!("greet.{i}"), "hi".into())).await.expect("a reply");
        assert_eq!(&reply.payload[..], b"hi");
    }
}

/// The greet route's version, from the host's startup summary
/// (`route greet: ... -> plugin echo (<version>)`).
fn version(host: &Host) -> String {
    let output = host.output();
    let line = output.lines().find(|l| l.contains("route greet:")).unwrap_or_else(|| panic!("no greet route in:\n{output}"));
    line.rsplit_once('(').and_then(|(_, v)| v.strip_suffix(')')).expect("(version)").to_owned()
}

/// A rate or a duration cell: its number, or `None` for `-`.
fn number(cell: &str) -> Option<f64> {
    let digits = cell.trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ' || c == '%');
    (cell != "-").then(|| digits.parse().unwrap_or_else(|_| panic!("not a number: {cell}")))
}

#[tokio::test]
async fn status_and_top_show_each_routes_last_ten_seconds() {
    let nats = NatsServer::start();
    let host = Host::start(&config(nats.url())).await;
    let version = version(&host);
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    requests(&client, 20).await;
    within(WAIT, "a job published", async { js.publish("jobs.one", "job".into()).await.expect("publish").await.expect("stored") }).await;
    let url = nats.url();

    // `status`: the fleet table (the same rows as `top --once`, below), then
    // the host's detail with the route's line. Each poll sends a few more
    // requests, so the last ten seconds are never empty however slow the run.
    let out = eventually(WAIT, "status to show the greet route's traffic", || async {
        requests(&client, 3).await;
        let (ok, out, err) = switchyard(&["status", "--url", url]).await;
        assert!(ok, "status failed:\n{out}{err}");
        let greet: Vec<&str> = out.lines().find(|l| l.split_whitespace().nth(1) == Some("greet"))?.split_whitespace().collect();
        (greet.get(4).and_then(|rate| number(rate)) > Some(0.0)).then_some(out)
    })
    .await;
    assert!(out.starts_with("HOST "), "the table first:\n{out}");
    let route = out.lines().find(|l| l.starts_with("  route greet:")).unwrap_or_else(|| panic!("no greet route in:\n{out}"));
    assert!(route.ends_with(&format!("-> echo {version} (rollbacks: 0)")), "{out}");

    // `top --once`: the same, one aligned row per route.
    let (headings, greet, jobs) = eventually(WAIT, "top to show both routes' traffic", || async {
        requests(&client, 3).await;
        let (ok, out, err) = switchyard(&["top", "--once", "--url", url]).await;
        assert!(ok, "top --once failed:\n{out}{err}");
        let rows: Vec<Vec<String>> = out.lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
        let row = |route: &str| rows.iter().find(|r| r.get(1).map(String::as_str) == Some(route)).cloned();
        let (greet, jobs) = (row("greet")?, row("jobs")?);
        // The jobs route's consumer has nothing left pending.
        (number(&greet[4]) > Some(0.0) && jobs[9] == "0").then(|| (rows[0].clone(), greet, jobs))
    })
    .await;
    assert_eq!(headings, ["HOST", "ROUTE", "PLUGIN", "IN", "FLIGHT", "MSG/S", "ERR%", "P50", "P99", "BREAKER", "PENDING"]);
    let echo = format!("echo@{version}");
    assert_eq!(greet.len(), 10, "{greet:?}");
    assert_eq!((greet[2].as_str(), greet[3].as_str(), greet[5].as_str()), (echo.as_str(), "0", "0.0%"), "{greet:?}");
    let (p50, p99) = (number(&greet[6]).expect("a p50"), number(&greet[7]).expect("a p99"));
    assert!(p50 > 0.0 && p99 > 0.0, "{greet:?}");
    assert_eq!((greet[8].as_str(), greet[9].as_str()), ("closed", "-"), "{greet:?}");
    assert_eq!((jobs[2].as_str(), jobs[8].as_str()), (echo.as_str(), "-"), "no breaker on jobs: {jobs:?}");

    let (status, _) = host.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn top_once_without_a_host_says_so() {
    let nats = NatsServer::start();
    let (ok, out, err) = switchyard(&["top", "--once", "--url", nats.url()]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("no host listens on `switchyard.control.status`"), "{err}");
}
