//! Core NATS routes end to end: request/reply, transform-and-forward, queue groups.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::host::preamble;
use switchyard_tests::{Host, NatsServer, configs, plugin, within};

const WAIT: Duration = Duration::from_secs(10);

fn echo_config(url: &str, prefix: &str) -> String {
    format!(
        r#"{}
[plugins.echo]
path = "{}"
[plugins.echo.config]
prefix = "{prefix}"

[[routes]]
name = "greet"
plugin = "echo"
subjects = ["greet.*"]
queue = "greeters"
"#,
        preamble(url),
        plugin("echo").display()
    )
}

#[tokio::test]
async fn request_is_answered_by_the_plugin() {
    let nats = NatsServer::start();
    let host = Host::start(&echo_config(nats.url(), "re: ")).await;
    let client = nats.client().await;

    let reply = within(WAIT, "a reply", client.request("greet.ada", "hello".into())).await.expect("request");
    assert_eq!(&reply.payload[..], b"re: hello");
    let headers = reply.headers.expect("reply headers");
    assert_eq!(headers.get("echoed-by").map(|v| v.as_str()), Some("echo"));

    let (status, output) = host.stop().await;
    assert!(status.success(), "host exited with {status}; output:\n{output}");
    assert!(output.contains("route greet: core greet.* (queue greeters)"), "startup summary missing:\n{output}");
}

#[tokio::test]
async fn transform_forwards_json_on_core_nats() {
    let nats = NatsServer::start();
    let route = "[[routes]]\nname = \"events\"\nplugin = \"transform\"\nsubjects = [\"events.>\"]\n";
    let config = configs::transform(nats.url(), "processed", route);
    let host = Host::start(&config).await;
    let client = nats.client().await;
    let mut out = client.subscribe("processed.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    client.publish("events.user.created", r#"{"name":"ada","id":7}"#.into()).await.expect("publish");
    let msg = within(WAIT, "the forwarded message", out.next()).await.expect("a message");
    assert_eq!(msg.subject.as_str(), "processed.events.user.created");
    let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
    assert_eq!(body["id"], 7);
    assert_eq!(body["name_upper"], "ADA");
    assert_eq!(body["processed_by"], "transform");
    assert_eq!(body["source_subject"], "events.user.created");
    let headers = msg.headers.expect("headers");
    assert_eq!(headers.get("content-type").map(|v| v.as_str()), Some("application/json"));

    let (status, _) = host.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn a_queue_group_over_two_hosts_splits_the_load() {
    let nats = NatsServer::start();
    let a = Host::start(&echo_config(nats.url(), "a:")).await;
    let b = Host::start(&echo_config(nats.url(), "b:")).await;
    let client = nats.client().await;

    let mut by_host: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        let reply = within(WAIT, "a reply", client.request("greet.load", format!("{i}").into())).await.expect("request");
        let text = String::from_utf8_lossy(&reply.payload).into_owned();
        let (host, body) = text.split_once(':').expect("prefixed reply");
        assert_eq!(body, i.to_string(), "reply carries the request's payload");
        *by_host.entry(host.to_owned()).or_default() += 1;
    }
    assert_eq!(by_host.values().sum::<usize>(), 200, "every request answered exactly once");
    assert!(by_host.get("a").copied().unwrap_or(0) > 20, "host a got too little: {by_host:?}");
    assert!(by_host.get("b").copied().unwrap_or(0) > 20, "host b got too little: {by_host:?}");

    a.stop().await;
    b.stop().await;
}

fn error_code(msg: &async_nats::Message) -> Option<String> {
    msg.headers.as_ref()?.get("Nats-Service-Error-Code").map(|v| v.to_string())
}

#[tokio::test]
async fn a_core_rate_limit_sheds_what_cannot_wait() {
    let nats = NatsServer::start();
    let config = format!(
        r#"{}
[plugins.echo]
path = "{}"

[[routes]]
name = "greet"
plugin = "echo"
subjects = ["greet.*"]
concurrency = 8
rate_limit = {{ rate = 1, per = "10s", burst = 2, max_wait = "100ms" }}
"#,
        preamble(nats.url()),
        plugin("echo").display()
    );
    let host = Host::start(&config).await;
    let client = nats.client().await;
    let requests = (0..6).map(|i| client.request("greet.x", format!("{i}").into()));
    let replies = within(WAIT, "six answers", futures::future::join_all(requests)).await;
    let codes: Vec<Option<String>> = replies.iter().map(|r| error_code(r.as_ref().expect("an answer"))).collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 2, "the burst is served: {codes:?}");
    assert_eq!(codes.iter().filter(|c| c.as_deref() == Some("429")).count(), 4, "the rest shed: {codes:?}");
    let (_, output) = host.stop().await;
    assert!(output.contains("shed=4"), "shed messages are counted:\n{output}");
}

#[tokio::test]
async fn an_open_breaker_fails_core_requests_fast() {
    let nats = NatsServer::start();
    let config = format!(
        r#"{}
[plugins.faulty]
path = "{}"
config = {{ action = "retry" }}

[[routes]]
name = "flaky"
plugin = "faulty"
subjects = ["flaky"]
retry = {{ attempts = 1 }}
breaker = {{ consecutive_failures = 2, open_for = "30s" }}
"#,
        preamble(nats.url()),
        plugin("faulty").display()
    );
    let host = Host::start(&config).await;
    let client = nats.client().await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let reply = within(WAIT, "an answer", client.request("flaky", "x".into())).await.expect("answer");
        codes.push(error_code(&reply).unwrap_or_default());
    }
    assert_eq!(codes, ["500", "500", "503", "503"], "two failures open the breaker, then fail fast");
    let (_, output) = host.stop().await;
    assert!(output.contains("breaker_open=2"), "{output}");
    assert!(output.contains("dead_letter=2"), "only real failures are dead-lettered:\n{output}");
}

/// A route without `queue` spreads its messages over its workers through a
/// queue group of its own: each host must still get every message, exactly once.
#[tokio::test]
async fn without_a_queue_every_host_gets_every_message_once() {
    let nats = NatsServer::start();
    let route = "[[routes]]\nname = \"fan\"\nplugin = \"transform\"\nsubjects = [\"fan.>\"]\nconcurrency = 4\n";
    let config = |target: &str| configs::transform(nats.url(), target, route);
    let a = Host::start(&config("a")).await;
    let b = Host::start(&config("b")).await;
    let client = nats.client().await;
    let mut out = client.subscribe("*.fan.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    const N: u64 = 200;
    for id in 0..N {
        client.publish("fan.out", format!(r#"{{"name":"n","id":{id}}}"#).into()).await.expect("publish");
    }
    client.flush().await.expect("flush");
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    while seen.values().map(Vec::len).sum::<usize>() < 2 * N as usize {
        let msg = within(WAIT, "the forwarded messages", out.next()).await.expect("a message");
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        let host = msg.subject.split('.').next().unwrap_or_default().to_owned();
        seen.entry(host).or_default().push(body["id"].as_u64().expect("id"));
    }
    // Nothing more: a duplicate would arrive within this window.
    assert!(switchyard_tests::js::quiet(&mut out, Duration::from_millis(300)).await.is_empty(), "duplicates");
    for host in ["a", "b"] {
        let mut ids = seen.remove(host).unwrap_or_default();
        ids.sort_unstable();
        assert_eq!(ids, (0..N).collect::<Vec<_>>(), "host {host} did not handle every message exactly once");
    }
    a.stop().await;
    b.stop().await;
}
