//! examples/ride-hailing end to end, on its own runtime.toml: the four work-queue streams and the
//! durable consumers as the seed declares them; the location update, driver matching and ride
//! lifecycle flows, step by step, checked by what reaches the clients (`ws.{user}`); invalid
//! payloads dead-lettered with their validation error; the stream health check over request/reply.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, stream::RetentionPolicy, stream::StorageType};
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::examples::{self, json, next_n, sample, sample_json, stored_header};
use switchyard_tests::js::{count, messages, pending, quiet};
use switchyard_tests::{NatsServer, eventually, within};

const EXAMPLE: &str = "ride-hailing";
const WAIT: Duration = Duration::from_secs(20);
const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
const OTHER_DRIVER: &str = "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
const PASSENGER: &str = "7d3e2a10-5b4c-4e8f-a1d2-6c9b0e3f4a22";
/// Derived by match-propose from the sample request id (see messages/match-accepted.json).
const MATCH: &str = "8d4b79e9-e693-8666-a96e-6ca7a64010ad";
/// Derived by ride-lifecycle from the match id (see messages/ride-start.json).
const RIDE: &str = "922a2093-55c1-85d8-8798-32f65c57c171";
const STREAMS: [&str; 4] = ["LOCATION", "MATCH", "RIDE", "USER"];

async fn publish(js: &jetstream::Context, subject: &str, payload: impl Into<bytes::Bytes>) {
    js.publish(subject.to_owned(), payload.into()).await.expect("publish").await.expect("stream ack");
}

/// Work queues: every message taken and acked leaves its stream.
async fn streams_empty(js: &jetstream::Context) {
    for stream in STREAMS {
        eventually(WAIT, &format!("stream {stream} to be empty"), || async { (count(js, stream).await == 0).then_some(()) }).await;
    }
}

/// A client notification: (recipient, event, data).
fn notification(msg: &async_nats::Message) -> (String, String, Value) {
    let body = json(&msg.payload);
    let user = msg.subject.as_str().strip_prefix("ws.").unwrap_or_else(|| panic!("not a ws subject: {}", msg.subject));
    (user.to_owned(), body["event"].as_str().unwrap_or_default().to_owned(), body["data"].clone())
}

/// The events `user` was notified of, sorted.
fn events_of(got: &[(String, String, Value)], user: &str) -> Vec<String> {
    let mut events: Vec<String> = got.iter().filter(|(u, _, _)| u == user).map(|(_, e, _)| e.clone()).collect();
    events.sort();
    events
}

#[tokio::test]
async fn streams_and_consumers_are_the_documents() {
    let checked = examples::check(EXAMPLE, "runtime.toml");
    assert!(checked.contains("ok (7 plugin(s), 11 route(s), 4 stream(s))"), "{checked}");
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let js = jetstream::new(nats.client().await);

    for (name, subject) in [("LOCATION", "location.>"), ("MATCH", "match.>"), ("RIDE", "ride.>"), ("USER", "user.>")] {
        let mut stream = js.get_stream(name).await.expect("stream");
        let config = stream.info().await.expect("info").config.clone();
        assert_eq!(config.subjects, [subject], "{name}");
        assert_eq!(config.retention, RetentionPolicy::WorkQueue, "{name}");
        assert_eq!(config.storage, StorageType::File, "{name}");
        assert_eq!(config.max_age, Duration::from_secs(24 * 3600), "{name}");
    }
    // The seed's durable consumers, with its filter subjects (the rest serve the same flows).
    for (stream, durable, filters) in [
        ("LOCATION", "users-location-consumer", vec!["location.stored.*"]),
        ("MATCH", "users-match-consumer", vec!["match.proposal.*"]),
        ("USER", "match-beacon-consumer", vec!["user.beacon.*"]),
        ("LOCATION", "location-service-consumer", vec!["location.update.*"]),
        ("MATCH", "match-request-consumer", vec!["match.request.*"]),
        ("MATCH", "match-accepted-consumer", vec!["match.accepted.*"]),
        ("MATCH", "users-match-confirmed-consumer", vec!["match.confirmed.*"]),
        ("RIDE", "rides-consumer", vec!["ride.create.*", "ride.start.*", "ride.complete.*"]),
        ("RIDE", "users-ride-consumer", vec!["ride.created.*", "ride.started.*", "ride.completed.*", "ride.payment.*"]),
    ] {
        let info = js.get_stream(stream).await.expect("stream").consumer_info(durable).await.expect("consumer").config;
        let mut got = info.filter_subjects.clone();
        if !info.filter_subject.is_empty() {
            got.push(info.filter_subject.clone());
        }
        assert_eq!(got, filters, "{durable}");
        assert_eq!(info.durable_name.as_deref(), Some(durable));
        // The example's `max_deliver = 3` is counted by the host, which dead-letters the
        // third failure; the server is told never to drop a message on its own.
        assert_eq!(info.max_deliver, -1, "{durable}");
        assert_eq!(info.ack_policy, AckPolicy::Explicit, "{durable}");
    }
    host.stop().await;
}

#[tokio::test]
async fn location_update_flow() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut clients = client.subscribe("ws.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    publish(&js, &format!("location.update.{DRIVER}"), sample(EXAMPLE, "location-update.json")).await;
    let [confirmation] = <[_; 1]>::try_from(next_n(&mut clients, 1, WAIT, "the location confirmation").await).expect("one");
    let (user, event, data) = notification(&confirmation);
    assert_eq!((user.as_str(), event.as_str()), (DRIVER, "location.stored"));
    assert_eq!(
        data,
        json!({"user_id": DRIVER, "latitude": -6.195, "longitude": 106.823, "timestamp": "2024-03-20T10:00:00Z",
               "expires_at": "2024-03-20T10:05:00Z"})
    );
    streams_empty(&js).await;
    assert_eq!(pending(&js, "LOCATION", "users-location-consumer").await, (0, 0));
    // Stored where match-propose finds it, with the seed's TTL on the bucket.
    let locations = js.get_key_value("LOCATIONS").await.expect("the LOCATIONS bucket");
    assert_eq!(locations.status().await.expect("status").max_age(), Duration::from_secs(300));
    let entry = locations.get(DRIVER).await.expect("get").expect("the driver's position");
    assert_eq!(json(&entry), data, "the record the client was told about");
    host.stop().await;
}

#[tokio::test]
async fn driver_matching_then_the_ride_lifecycle() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut clients = client.subscribe("ws.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    // Availability: validated and acked (nothing to notify).
    publish(&js, &format!("user.beacon.{DRIVER}"), sample(EXAMPLE, "beacon.json")).await;
    // Two drivers' positions, stored by the location service.
    publish(&js, &format!("location.update.{DRIVER}"), sample(EXAMPLE, "location-update.json")).await;
    publish(&js, &format!("location.update.{OTHER_DRIVER}"), sample(EXAMPLE, "location-update-far.json")).await;
    let stored = next_n(&mut clients, 2, WAIT, "both positions stored").await;
    assert!(stored.iter().all(|msg| notification(msg).1 == "location.stored"));
    // Matching: the nearer of the two stored drivers gets the proposal.
    publish(&js, &format!("match.request.{PASSENGER}"), sample(EXAMPLE, "match-request.json")).await;
    let proposal = next_n(&mut clients, 1, WAIT, "the proposal").await;
    let (user, event, data) = notification(&proposal[0]);
    assert_eq!((user.as_str(), event.as_str()), (DRIVER, "match.proposal"));
    assert_eq!(
        data,
        json!({"match_id": MATCH, "driver_id": DRIVER, "passenger_id": PASSENGER, "distance": 2.23, "estimated_eta": 6,
               "pickup": {"latitude": -6.1754, "longitude": 106.8272}, "destination": {"latitude": -6.2297, "longitude": 106.8295}})
    );

    // The driver accepts (the users service relays the proposal): confirmed to both, then the ride.
    let accepted = sample_json(EXAMPLE, "match-accepted.json");
    for key in ["match_id", "driver_id", "passenger_id", "pickup", "destination"] {
        assert_eq!(accepted[key], data[key], "the sample acceptance answers this proposal ({key})");
    }
    publish(&js, &format!("match.accepted.{MATCH}"), sample(EXAMPLE, "match-accepted.json")).await;
    let got: Vec<_> = next_n(&mut clients, 4, WAIT, "confirmation and ride creation").await.iter().map(notification).collect();
    // Two consumers deliver these, so only each party's set is fixed, not the interleaving.
    assert_eq!(events_of(&got, PASSENGER), ["match.confirmed", "ride.created"]);
    assert_eq!(events_of(&got, DRIVER), ["match.confirmed", "ride.created"]);
    let created = &got.iter().find(|(_, e, _)| e == "ride.created").expect("ride.created").2;
    assert_eq!(
        created,
        &json!({"ride_id": RIDE, "match_id": MATCH, "driver_id": DRIVER, "passenger_id": PASSENGER,
                "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                "destination": {"latitude": -6.2297, "longitude": 106.8295}, "route_distance": 6.04})
    );

    // Progress: started to both parties; then completed and the payment to both.
    publish(&js, &format!("ride.start.{RIDE}"), sample(EXAMPLE, "ride-start.json")).await;
    let started: Vec<_> = next_n(&mut clients, 2, WAIT, "ride started").await.iter().map(notification).collect();
    assert_eq!(events_of(&started, PASSENGER), ["ride.started"]);
    assert_eq!(events_of(&started, DRIVER), ["ride.started"]);
    assert_eq!(started[0].2["started_at"], "2024-03-20T10:10:00Z");
    publish(&js, &format!("ride.complete.{RIDE}"), sample(EXAMPLE, "ride-complete.json")).await;
    let got: Vec<_> = next_n(&mut clients, 4, WAIT, "ride completed").await.iter().map(notification).collect();
    for user in [PASSENGER, DRIVER] {
        assert_eq!(events_of(&got, user), ["ride.completed", "ride.payment"], "{user}");
    }
    let completed = &got.iter().find(|(_, e, _)| e == "ride.completed").expect("completed").2;
    assert_eq!(
        completed,
        &json!({"ride_id": RIDE, "driver_id": DRIVER, "passenger_id": PASSENGER, "distance_km": 6.5, "duration_min": 21.5,
                "completed_at": "2024-03-20T10:31:30Z"})
    );
    let payment = &got.iter().find(|(_, e, _)| e == "ride.payment").expect("payment").2;
    assert_eq!(
        payment,
        &json!({"ride_id": RIDE, "passenger_id": PASSENGER, "driver_id": DRIVER, "currency": "IDR",
                "base_fare": 5000, "distance_fare": 19500, "total": 24500})
    );
    assert!(got.iter().all(|(u, _, _)| u != OTHER_DRIVER), "the farther driver heard nothing");
    streams_empty(&js).await;
    assert!(host.output().contains(&format!("driver {DRIVER} is available")), "the beacon was handled");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0);
    host.stop().await;
}

#[tokio::test]
async fn invalid_payloads_are_dead_lettered_with_the_validation_error() {
    let nats = NatsServer::start();
    let host = examples::start(EXAMPLE, "runtime.toml", &nats).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let mut clients = client.subscribe("ws.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    publish(&js, "location.update.driver-7", sample(EXAMPLE, "location-update-invalid.json")).await;
    // A valid start, but on another ride's subject: misrouted, so refused.
    publish(&js, "ride.start.ffffffff-0000-4000-8000-000000000000", sample(EXAMPLE, "ride-start.json")).await;
    publish(&js, &format!("match.request.{PASSENGER}"), "{\"request_id\": 1}").await;
    eventually(WAIT, "three dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await >= 3).then_some(()) }).await;
    streams_empty(&js).await;

    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    let letter = |route: &str| letters.iter().find(|m| stored_header(m, "Switchyard-Route") == route).expect("a letter of that route");
    let location = letter("location-service-consumer");
    assert_eq!(&location.payload[..], sample(EXAMPLE, "location-update-invalid.json").as_bytes(), "payload intact");
    assert_eq!(stored_header(location, "Switchyard-Stream"), "LOCATION");
    assert_eq!(stored_header(location, "Switchyard-Delivery-Count"), "1", "rejected, never retried");
    assert_eq!(
        stored_header(location, "Switchyard-Reason"),
        "message validation failed: `user_id` must be a uuid, found `driver-7`; `latitude` must be within -90..=90, found 123"
    );
    let ride = letter("rides-consumer");
    assert_eq!(stored_header(ride, "Switchyard-Delivery-Count"), "1");
    assert_eq!(
        stored_header(ride, "Switchyard-Reason"),
        format!(
            "message validation failed: subject `ride.start.ffffffff-0000-4000-8000-000000000000` names \
             `ffffffff-0000-4000-8000-000000000000` but the payload is about `{RIDE}`"
        )
    );
    let request = letter("match-request-consumer");
    let reason = stored_header(request, "Switchyard-Reason");
    assert!(reason.starts_with("message validation failed: payload is not a valid message: invalid type: integer `1`"), "{reason}");
    assert!(quiet(&mut clients, Duration::from_millis(300)).await.is_empty(), "nothing reached a client");
    host.stop().await;
}

/// The health check asks JetStream for each stream's info: answered on request, and published to
/// `health.streams` on each tick of its timer route (30 s in the example, 1 s here).
#[tokio::test]
async fn the_stream_health_check_answers_requests_and_reports_on_its_timer() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let mut reports = client.subscribe("health.streams").await.expect("subscribe");
    let (host, _config) = examples::start_edited(EXAMPLE, "runtime.toml", &nats, "every = \"30s\"", "every = \"1s\"").await;

    let reply = within(WAIT, "the health reply", client.request("health.check.streams", "".into())).await.expect("reply");
    assert_eq!(examples::header(&reply, "content-type"), "application/json");
    let health = json(&reply.payload);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["service"], "ride-hailing");
    let stream = |name: &str, consumers: u64| json!({"name": name, "status": "ok", "messages": 0, "consumers": consumers});
    assert_eq!(health["streams"], json!([stream("LOCATION", 2), stream("MATCH", 4), stream("RIDE", 2), stream("USER", 1)]));
    let asked = client.request("health.check.streams", r#"{"streams": ["RIDE", "PAYMENTS"]}"#.into());
    let degraded = json(&within(WAIT, "the second reply", asked).await.expect("reply").payload);
    assert_eq!(degraded["status"], "degraded");
    assert_eq!(degraded["streams"][1], json!({"name": "PAYMENTS", "status": "unknown"}));

    // A stream that is gone is reported missing, on the next tick.
    jetstream::new(client.clone()).delete_stream("USER").await.expect("delete USER");
    let missing = async {
        loop {
            let report = json(&reports.next().await.expect("the subscription open").payload);
            if report["streams"][3] == json!({"name": "USER", "status": "missing"}) {
                return report;
            }
        }
    };
    let report = within(WAIT, "a report with USER missing", missing).await;
    assert_eq!(report["status"], "degraded");
    host.stop().await;
}
