//! Requests through the host against a real nats-server: the `faulty` plugin
//! sends the request a message describes (its `request` key) and replies with
//! what came back.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::admin::scrape;
use switchyard_tests::host::preamble;
use switchyard_tests::{Host, NatsServer, plugin, within};

const WAIT: Duration = Duration::from_secs(20);

/// `faulty` on `ask.>`, allowed to ask `pricing.>`, its calls cut at 1 s.
fn config(url: &str) -> String {
    format!(
        "{}[plugins.faulty]\npath = \"{}\"\ntimeout = \"1s\"\nrequest = [\"pricing.>\"]\n\n\
         [[routes]]\nname = \"ask\"\nplugin = \"faulty\"\nsubjects = [\"ask.>\"]\nretry = {{ attempts = 1 }}\n",
        preamble(url),
        plugin("faulty").display()
    )
}

/// Ask the plugin to send `request`; what it replied (the request's outcome).
async fn through_plugin(client: &async_nats::Client, request: Value) -> Value {
    let body = json!({"request": request, "action": "reply"}).to_string();
    let reply = within(WAIT, "the plugin's reply", client.request("ask.x", body.into())).await.expect("a reply");
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}: {:?}", reply.payload))
}

#[tokio::test]
async fn a_plugin_asks_a_service_and_gets_its_reply_or_why_not() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let host = Host::start(&config(nats.url())).await;

    // A pricing service that answers, and one that never does.
    let mut quotes = client.subscribe("pricing.quote").await.expect("subscribe");
    let service = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = quotes.next().await {
            let answer = format!("price for {}", String::from_utf8_lossy(&msg.payload));
            let _ = service.publish(msg.reply.expect("a request"), answer.into()).await;
        }
    });
    let _silent = client.subscribe("pricing.slow").await.expect("subscribe");
    client.flush().await.expect("flush");

    let answered = through_plugin(&client, json!({"subject": "pricing.quote", "payload": "ride-7"})).await;
    assert_eq!(answered, json!({"reply": "price for ride-7"}));
    let nobody = through_plugin(&client, json!({"subject": "pricing.none", "payload": "x"})).await;
    assert_eq!(nobody, json!({"error": "no_responders"}));
    let elsewhere = through_plugin(&client, json!({"subject": "billing.charge", "payload": "x"})).await;
    assert_eq!(elsewhere, json!({"error": "not_allowed"}));
    let started = Instant::now();
    let slow = through_plugin(&client, json!({"subject": "pricing.slow", "payload": "x", "timeout_ms": 200})).await;
    assert_eq!(slow, json!({"error": "timed_out"}));
    assert!(started.elapsed() < Duration::from_millis(900), "its own timeout: {:?}", started.elapsed());

    // Without a timeout of its own, the request lasts as long as the call may:
    // the plugin's 1 s, then the call is a timeout like any other.
    let body = json!({"request": {"subject": "pricing.slow", "payload": "x"}, "action": "reply"}).to_string();
    let started = Instant::now();
    let reply = within(WAIT, "an error reply", client.request("ask.x", body.into())).await.expect("a reply");
    let took = started.elapsed();
    let code = reply.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code")).map(|v| v.to_string());
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "cut at the call's timeout: {took:?}");
    assert_eq!(code.as_deref(), Some("500"), "{:?}", reply.headers);

    let s = scrape(host.admin_url()).await;
    let requests = |kind: &str| s.value("switchyard_plugin_requests_total", &[("plugin", "faulty"), ("kind", kind)]);
    assert_eq!((requests("ok"), requests("no_responders"), requests("not_allowed")), (1.0, 1.0, 1.0));
    assert!(requests("timed_out") >= 1.0);
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}
