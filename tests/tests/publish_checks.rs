//! What NATS cannot take is caught where something can still be done about it:
//! a publish over the server's `max_payload`, or with a header NATS cannot
//! carry, is refused by `publish()` with a status code the plugin sees; a reply
//! that cannot be sent becomes an error reply to the requester and a dead
//! letter; and every publish made while handling a JetStream message carries
//! `Nats-Msg-Id`, core subjects included.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, header, messages, publish_many, quiet};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(20);

/// The `max_payload` of the servers started by [`small_server`].
const MAX_PAYLOAD: usize = 8192;

/// A nats-server that takes messages of at most [`MAX_PAYLOAD`] bytes. The
/// folder holds its config file.
fn small_server() -> (NatsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("small.conf");
    std::fs::write(&conf, format!("max_payload: {MAX_PAYLOAD}\n")).expect("write the server config");
    let server = NatsServer::start_with_args(&["-c", conf.to_str().expect("a utf-8 temp path")]);
    (server, dir)
}

/// The `faulty` plugin answering requests on `ask.>`; it may publish to `out.>`.
/// What it does comes from each request's JSON body.
fn faulty_requests(url: &str) -> String {
    format!(
        r#"{}
[plugins.faulty]
path = "{}"
publish = ["out.>"]

[[routes]]
name = "ask"
plugin = "faulty"
subjects = ["ask.>"]
"#,
        preamble(url),
        plugin("faulty").display()
    )
}

async fn ask(client: &async_nats::Client, body: &Value) -> async_nats::Message {
    let request = client.request("ask.x", serde_json::to_vec(body).expect("json").into());
    within(WAIT, &format!("an answer to {body}"), request).await.unwrap_or_else(|e| panic!("no answer to {body}: {e}"))
}

/// The `Nats-Service-Error` and its code, or `None` for a successful answer.
fn service_error(reply: &async_nats::Message) -> Option<(String, String)> {
    let headers = reply.headers.as_ref()?;
    let error = headers.get("Nats-Service-Error")?.as_str().to_owned();
    let code = headers.get("Nats-Service-Error-Code").map(|v| v.as_str().to_owned()).unwrap_or_default();
    Some((error, code))
}

#[tokio::test]
async fn an_oversized_publish_is_refused_to_the_plugin_and_the_request_fails() {
    let (nats, _conf) = small_server();
    let host = Host::start(&faulty_requests(nats.url())).await;
    let client = nats.client().await;
    let mut out = client.subscribe("out.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    // Under the limit, headers included: published and answered as usual.
    let fits = ask(&client, &json!({"publish": ["out.fits"], "payload_bytes": MAX_PAYLOAD - 200, "action": "reply"})).await;
    assert_eq!(service_error(&fits), None, "a publish that fits is sent");
    let sent = within(WAIT, "the publish that fits", out.next()).await.expect("a message");
    assert_eq!(sent.payload.len(), MAX_PAYLOAD - 200);

    let body = json!({"publish": ["out.big"], "payload_bytes": MAX_PAYLOAD + 1, "action": "reply"});
    let reply = ask(&client, &body).await;
    let (error, code) = service_error(&reply).expect("the request is not answered as a success");
    // faulty rejects a message whose publish was refused: a reject is answered 400.
    assert_eq!(code, "400");
    assert!(error.contains("larger than the server's max_payload") && error.ends_with("(status -8)"), "{error}");
    assert!(quiet(&mut out, Duration::from_millis(300)).await.is_empty(), "nothing too large was published");
    host.stop().await;
}

#[tokio::test]
async fn a_publish_with_a_header_nats_cannot_carry_is_refused_to_the_plugin() {
    let nats = NatsServer::start();
    let host = Host::start(&faulty_requests(nats.url())).await;
    let client = nats.client().await;
    let mut out = client.subscribe("out.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    for (headers, expected) in [
        (json!({"bad name": "v"}), "invalid header name \"bad name\""),
        (json!({"a:b": "v"}), "invalid header name \"a:b\""),
        (json!({"k": "a\r\nPUB out.smuggled 0"}), "invalid value for header `k`"),
    ] {
        let reply = ask(&client, &json!({"publish": ["out.h"], "headers": headers, "action": "reply"})).await;
        let (error, code) = service_error(&reply).unwrap_or_else(|| panic!("{headers} answered as a success"));
        assert_eq!(code, "400", "faulty rejects a message whose publish was refused");
        assert!(error.contains(expected) && error.ends_with("(status -9)"), "{headers}: {error}");
    }
    assert!(quiet(&mut out, Duration::from_millis(300)).await.is_empty(), "no bad header was published");
    host.stop().await;
}

#[tokio::test]
async fn a_reply_that_cannot_be_sent_gets_an_error_reply_and_a_dead_letter() {
    let (nats, _conf) = small_server();
    let host = Host::start(&faulty_requests(nats.url())).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());

    let too_large = json!({"payload_bytes": MAX_PAYLOAD + 1, "action": "reply"});
    let requests: Vec<_> = (0..10).map(|_| ask(&client, &too_large)).collect();
    for reply in futures::future::join_all(requests).await {
        let (error, code) = service_error(&reply).expect("an error reply, not silence");
        assert_eq!(code, "500");
        assert!(error.starts_with("reply not sent: ") && error.contains("exceed the server's max_payload of 8192"), "{error}");
    }
    let bad_header = ask(&client, &json!({"headers": {"bad name": "v"}, "action": "reply"})).await;
    let (error, code) = service_error(&bad_header).expect("an error reply, not silence");
    assert_eq!((error.starts_with("reply not sent: invalid header name \"bad name\""), code.as_str()), (true, "500"), "{error}");

    eventually(WAIT, "eleven dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await == 11).then_some(()) }).await;
    for letter in messages(&js, "SWITCHYARD_DLQ").await {
        assert_eq!(header(&letter, "Switchyard-Route"), "ask");
        assert!(header(&letter, "Switchyard-Reason").starts_with("reply not sent: "), "{:?}", letter.headers);
    }
    host.stop().await;
}

#[tokio::test]
async fn an_oversized_publish_from_a_jetstream_message_is_dead_lettered_at_once() {
    let (nats, _conf) = small_server();
    let host = Host::start(&faulty_jobs(nats.url(), "", "max_deliver = 5\nretry = { delays = [\"50ms\"] }")).await;
    let js = jetstream::new(nats.client().await);

    let body = json!({"publish": ["done.big"], "payload_bytes": MAX_PAYLOAD + 1});
    publish_many(&js, "jobs.big", 1, |_| serde_json::to_vec(&body).expect("json")).await;
    eventually(WAIT, "the dead letter", || async { (count(&js, "SWITCHYARD_DLQ").await == 1).then_some(()) }).await;
    let letter = &messages(&js, "SWITCHYARD_DLQ").await[0];
    assert_eq!(header(letter, "Switchyard-Delivery-Count"), "1", "refused to the plugin, not retried after its ack");
    assert!(header(letter, "Switchyard-Reason").ends_with("(status -8)"), "{:?}", letter.headers);
    host.stop().await;
}

#[tokio::test]
async fn publishes_of_a_jetstream_message_to_core_subjects_carry_its_msg_id() {
    let nats = NatsServer::start();
    // No stream captures `seen.>`: the publish goes out as a core message.
    let host = Host::start(&faulty_jobs(nats.url(), "config = { publish = [\"seen.x\"] }", "")).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut seen = client.subscribe("seen.x").await.expect("subscribe");
    client.flush().await.expect("flush");

    publish_many(&js, "jobs.a", 1, |_| b"{}".to_vec()).await;
    let first = within(WAIT, "the core publish", seen.next()).await.expect("a message");
    let headers = first.headers.expect("headers");
    assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("JOBS:1:0"));

    // A plugin that names its own id keeps it, alone.
    publish_many(&js, "jobs.b", 1, |_| br#"{"headers": {"Nats-Msg-Id": "evt-7"}}"#.to_vec()).await;
    let second = within(WAIT, "the second core publish", seen.next()).await.expect("a message");
    let headers = second.headers.expect("headers");
    let ids: Vec<&str> = headers.get_all("Nats-Msg-Id").map(|v| v.as_str()).collect();
    assert_eq!(ids, ["evt-7"]);
    host.stop().await;
}
