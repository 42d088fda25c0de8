//! Core NATS routes end to end: request/reply, transform-and-forward, queue groups.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::host::preamble;
use switchyard_tests::{Host, NatsServer, plugin, within};

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
    let config = format!(
        r#"{}
[plugins.transform]
path = "{}"
publish = ["processed.>"]
[plugins.transform.config]
target = "processed"

[[routes]]
name = "events"
plugin = "transform"
subjects = ["events.>"]
"#,
        preamble(nats.url()),
        plugin("transform").display()
    );
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
