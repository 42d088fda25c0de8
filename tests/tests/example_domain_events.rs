//! examples/domain-events end to end, on its own runtime.toml: user events become follow-up
//! commands on the WORK stream (content, order and headers checked), a duplicate publish and a
//! replayed event each produce their commands once, and failing events are retried or rejected
//! into the dead-letter stream.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::StreamMessage};
use serde_json::{Value, json};
use switchyard_tests::examples::{self, json, sample, stored_header};
use switchyard_tests::js::{count, messages, pending};
use switchyard_tests::{NatsServer, eventually};

const EXAMPLE: &str = "domain-events";
const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "5f0c6d1e-8a43-4d4e-9b6a-3c1f2e7d9a10";
const ROUTES: [&str; 3] = ["user-created", "user-updated", "avatar-uploaded"];

/// Publish a sample event into the USERS stream; `Nats-Msg-Id` when given. Returns whether the
/// stream stored it as a duplicate.
async fn publish(js: &jetstream::Context, subject: &str, file: &str, msg_id: Option<&str>) -> bool {
    let mut headers = HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    let ack = js.publish_with_headers(subject.to_owned(), headers, sample(EXAMPLE, file).into()).await.expect("publish");
    ack.await.expect("stream ack").duplicate
}

async fn drained(js: &jetstream::Context) {
    for route in ROUTES {
        eventually(WAIT, &format!("consumer `{route}` to have nothing pending"), || async {
            (pending(js, "USERS", route).await == (0, 0)).then_some(())
        })
        .await;
    }
}

/// The WORK messages whose command was caused by the USERS message at `sequence`, in stream order.
fn caused_by(work: &[StreamMessage], sequence: u64) -> Vec<(&str, Value, &StreamMessage)> {
    work.iter()
        .map(|m| (m.subject.as_str(), json(&m.payload), m))
        .filter(|(_, body, _)| body["metadata"]["source"]["sequence"] == sequence)
        .collect()
}

#[tokio::test]
async fn user_events_become_follow_up_commands_on_the_work_stream() {
    let checked = examples::check(EXAMPLE, "runtime.toml");
    assert!(checked.contains("ok (3 plugin(s), 3 route(s), 2 stream(s))"), "{checked}");
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let js = jetstream::new(nats.client().await);

    publish(&js, "user.created", "user-created.json", None).await;
    publish(&js, "user.updated", "user-updated.json", None).await;
    publish(&js, "user.avatar.uploaded", "avatar-uploaded.json", None).await;
    eventually(WAIT, "six commands on WORK", || async { (count(&js, "WORK").await >= 6).then_some(()) }).await;
    drained(&js).await;
    let work = messages(&js, "WORK").await;
    assert_eq!(work.len(), 6, "two commands per event, none twice");

    // user.created (USERS seq 1): the welcome email, then the profile, in publish order.
    let created = caused_by(&work, 1);
    let subjects: Vec<&str> = created.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(subjects, ["work.email.welcome", "work.profile.create"]);
    let (_, email, stored) = &created[0];
    assert_eq!(email["type"], "command");
    assert!(email["id"].as_str().is_some_and(|id| id.starts_with("cmd_") && id.len() == 28), "{email}");
    assert_eq!(
        email["data"],
        json!({"user_id": USER, "to": "ada@example.com", "from": "welcome@example.com", "template": "welcome-v1",
               "variables": {"full_name": "Ada Lovelace"}})
    );
    assert_eq!(
        email["metadata"],
        json!({"schema_version": "1.0.0", "correlation_id": "corr_signup_7", "causation_id": "evt_01HV7Z3K2Q9M4X",
               "source": {"subject": "user.created", "stream": "USERS", "sequence": 1}})
    );
    assert_ne!(email["timestamp"], "2024-03-20T10:00:00Z", "issued when the event was stored, not when it happened");
    assert_eq!(stored_header(stored, "Nats-Msg-Id"), "USERS:1:0");
    assert_eq!(stored_header(stored, "content-type"), "application/json");
    let (_, profile, stored) = &created[1];
    assert_eq!(profile["data"], json!({"user_id": USER, "display_name": "Ada Lovelace"}));
    assert_eq!(profile["metadata"]["causation_id"], "evt_01HV7Z3K2Q9M4X");
    assert_eq!(profile["timestamp"], email["timestamp"]);
    assert_ne!(profile["id"], email["id"]);
    assert_eq!(stored_header(stored, "Nats-Msg-Id"), "USERS:1:1");

    // user.updated (seq 2): cache invalidation, then the search document.
    let updated = caused_by(&work, 2);
    let subjects: Vec<&str> = updated.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(subjects, ["work.cache.invalidate", "work.search.index"]);
    assert_eq!(updated[0].1["data"], json!({"user_id": USER, "keys": [format!("user:{USER}"), format!("user:{USER}:profile")]}));
    assert_eq!(
        updated[1].1["data"],
        json!({"index": "users", "document_id": USER, "document": {"email": "ada@analytical.example", "full_name": "Ada King"}})
    );
    assert_eq!(updated[1].1["metadata"]["correlation_id"], "corr_profile_edit_3");

    // user.avatar.uploaded (seq 3): thumbnails per configured size, then the avatar cache key.
    let avatar = caused_by(&work, 3);
    let subjects: Vec<&str> = avatar.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(subjects, ["work.thumbnail.generate", "work.cache.invalidate"]);
    assert_eq!(
        avatar[0].1["data"]["thumbnails"],
        json!([{"size": 64, "file_key": "avatars/5f0c6d1e/v3.png@64"}, {"size": 256, "file_key": "avatars/5f0c6d1e/v3.png@256"}])
    );
    assert_eq!(avatar[0].1["metadata"]["correlation_id"], "evt_01HV7Z5F6G7H8J", "no correlation id: the event starts one");
    assert_eq!(avatar[1].1["data"]["keys"], json!([format!("user:{USER}:avatar")]));

    assert_eq!(count(&js, "USERS").await, 3, "the event log keeps the events");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0);
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}

#[tokio::test]
async fn a_duplicate_publish_and_a_replayed_event_each_publish_their_commands_once() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());

    // A producer that retries its publish (same Nats-Msg-Id): the event is stored once.
    assert!(!publish(&js, "user.created", "user-created.json", Some("evt_01HV7Z3K2Q9M4X")).await);
    assert!(publish(&js, "user.created", "user-created.json", Some("evt_01HV7Z3K2Q9M4X")).await, "second copy dropped");
    assert_eq!(count(&js, "USERS").await, 1);
    eventually(WAIT, "the two commands", || async { (count(&js, "WORK").await >= 2).then_some(()) }).await;
    drained(&js).await;
    let before = messages(&js, "WORK").await;
    assert_eq!(before.len(), 2);

    // Replay: the consumer is reset (deleted while the host is down), so the restarted host
    // delivers the same stream message again. The handler publishes its commands again...
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    js.get_stream("USERS").await.expect("stream").delete_consumer("user-created").await.expect("delete consumer");
    let mut watcher = client.subscribe("work.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let again = examples::next_n(&mut watcher, 2, WAIT, "the replayed event's commands").await;
    drained(&js).await;

    // ...byte for byte the same, with the same Nats-Msg-Id: the WORK stream stored nothing new.
    for (stored, replayed) in before.iter().zip(&again) {
        assert_eq!(replayed.subject, stored.subject);
        assert_eq!(replayed.payload, stored.payload, "a redelivery produces identical commands");
        assert_eq!(examples::header(replayed, "Nats-Msg-Id"), stored_header(stored, "Nats-Msg-Id"));
    }
    let info = js.get_stream("USERS").await.expect("stream").consumer_info("user-created").await.expect("info");
    assert_eq!(info.ack_floor.stream_sequence, 1, "the new consumer did handle the event again");
    assert_eq!(count(&js, "WORK").await, 2, "the copies were dropped as duplicates");
    host.stop().await;
}

#[tokio::test]
async fn failing_avatar_events_are_retried_or_rejected_into_the_dead_letter_stream() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let js = jetstream::new(nats.client().await);

    let started = Instant::now();
    publish(&js, "user.avatar.uploaded", "avatar-storage-down.json", None).await;
    publish(&js, "user.avatar.uploaded", "avatar-bad-url.json", None).await;
    eventually(WAIT, "two dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await >= 2).then_some(()) }).await;
    let elapsed = started.elapsed();
    drained(&js).await;

    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    assert_eq!(letters.len(), 2);
    let by_sequence =
        |seq: &str| letters.iter().find(|m| stored_header(m, "Switchyard-Stream-Sequence") == seq).expect("the letter of that event");
    // Storage down: a retry on every attempt, nak'd with backoff, dead-lettered at max_deliver.
    let exhausted = by_sequence("1");
    assert_eq!(exhausted.subject.as_str(), "switchyard.dlq.avatar-uploaded");
    assert_eq!(&exhausted.payload[..], sample(EXAMPLE, "avatar-storage-down.json").as_bytes(), "payload intact");
    assert_eq!(stored_header(exhausted, "Switchyard-Original-Subject"), "user.avatar.uploaded");
    assert_eq!(stored_header(exhausted, "Switchyard-Route"), "avatar-uploaded");
    assert_eq!(stored_header(exhausted, "Switchyard-Plugin"), "avatar-pipeline");
    assert_eq!(stored_header(exhausted, "Switchyard-Stream"), "USERS");
    assert_eq!(stored_header(exhausted, "Switchyard-Delivery-Count"), "3");
    assert_eq!(
        stored_header(exhausted, "Switchyard-Reason"),
        "max_deliver (3) reached: avatar storage unavailable (simulated) for https://cdn.example.com/avatars/5f0c6d1e/v5.png"
    );
    assert!(elapsed >= Duration::from_millis(500), "two naks of ~200ms and ~400ms, took only {elapsed:?}");
    // A bad URL: rejected on the first delivery, with the validation error.
    let rejected = by_sequence("2");
    assert_eq!(stored_header(rejected, "Switchyard-Delivery-Count"), "1", "never retried");
    assert_eq!(
        stored_header(rejected, "Switchyard-Reason"),
        "message validation failed: `data.avatar_url` must be an https url, found `ftp://files.example.net/ada.png`"
    );
    assert_eq!(count(&js, "WORK").await, 0, "a failed handler publishes nothing");
    host.stop().await;
}
