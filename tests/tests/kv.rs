//! Key-value through the host against a real nats-server: the `faulty` plugin
//! runs the operations a request lists (its `kv` key) and replies with what the
//! host answered each.

use std::time::Duration;

use async_nats::jetstream;
use serde_json::{Value, json};
use switchyard_tests::admin::scrape;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::{count, create_stream, drained, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(20);

/// A core route `kv` on `kv.>`; the plugin may use `CARS` (values live 1 s,
/// at most 16 bytes) and `SEEN`, not `OTHER`.
const ROUTE: &str = r#"
[[routes]]
name = "kv"
plugin = "faulty"
subjects = ["kv.>"]

[[buckets]]
name = "CARS"
ttl = "1s"
max_value_size = "16B"

[[buckets]]
name = "SEEN"
history = 5

[[buckets]]
name = "OTHER"
"#;

const PLUGIN: &str = r#"kv = ["CARS", "SEEN"]"#;

/// Run `ops` through the plugin; what each answered.
async fn kv(client: &async_nats::Client, ops: Value) -> Vec<Value> {
    let body = json!({"kv": ops, "action": "reply"}).to_string();
    let reply = within(WAIT, "the plugin's reply", client.request("kv.x", body.into())).await.expect("a reply");
    let results: Value = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("{e}: {:?}", reply.payload));
    results.as_array().cloned().expect("an array of results")
}

#[tokio::test]
async fn a_plugin_reads_and_writes_its_buckets_and_no_other() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let host = Host::start(&faulty_jobs(nats.url(), PLUGIN, ROUTE)).await;

    let results = kv(
        &client,
        json!([
            {"op": "get", "bucket": "SEEN", "key": "a"},
            {"op": "put", "bucket": "SEEN", "key": "a", "value": "one"},
            {"op": "get", "bucket": "SEEN", "key": "a"},
            {"op": "create", "bucket": "SEEN", "key": "a", "value": "again"},
            {"op": "update", "bucket": "SEEN", "key": "a", "value": "stale", "revision": 99},
            {"op": "update", "bucket": "SEEN", "key": "a", "value": "two", "revision": 1},
            {"op": "create", "bucket": "SEEN", "key": "b.1", "value": "x"},
            {"op": "keys", "bucket": "SEEN", "prefix": ""},
            {"op": "delete", "bucket": "SEEN", "key": "b.1"},
            {"op": "get", "bucket": "SEEN", "key": "b.1"},
            {"op": "put", "bucket": "OTHER", "key": "a", "value": "no"},
            {"op": "put", "bucket": "SEEN", "key": ".bad", "value": "no"},
        ]),
    )
    .await;
    assert_eq!(results[0], json!({"missing": true}));
    assert_eq!(results[1], json!({"revision": 1}));
    assert_eq!(results[2], json!({"value": "one", "revision": 1}));
    assert_eq!(results[3], json!({"error": "conflict"}), "create of a key that has a value");
    assert_eq!(results[4], json!({"error": "conflict"}), "update with a revision that is not the key's");
    assert_eq!(results[5], json!({"revision": 2}), "compare and set");
    assert_eq!(results[6], json!({"revision": 3}));
    assert_eq!(results[7], json!({"keys": ["a", "b.1"]}));
    assert_eq!(results[8], json!({"deleted": true}));
    assert_eq!(results[9], json!({"missing": true}));
    assert_eq!(results[10], json!({"error": "not_allowed"}), "OTHER is not on the plugin's kv list");
    assert_eq!(results[11], json!({"error": "invalid"}));

    // What the plugin wrote is in the bucket, for anyone to read.
    let js = jetstream::new(client.clone());
    let seen = js.get_key_value("SEEN").await.expect("the bucket exists");
    assert_eq!(seen.get("a").await.expect("get").as_deref(), Some(&b"two"[..]));

    let s = scrape(host.admin_url()).await;
    let calls = |op: &str, result: &str| s.value("switchyard_kv_calls_total", &[("plugin", "faulty"), ("op", op), ("result", result)]);
    assert_eq!((calls("put", "ok"), calls("put", "not_allowed"), calls("put", "invalid")), (1.0, 1.0, 1.0));
    assert_eq!((calls("create", "conflict"), calls("update", "conflict"), calls("get", "not_found")), (1.0, 1.0, 2.0));

    // CARS' values live one second, and are at most 16 bytes.
    let put = kv(
        &client,
        json!([{"op": "put", "bucket": "CARS", "key": "car-1", "value": "here"}, {"op": "put", "bucket": "CARS", "key": "car-2", "value": "seventeen bytes!!"}]),
    )
    .await;
    assert_eq!(put[0], json!({"revision": 1}));
    assert_eq!(put[1], json!({"error": "too_large"}), "a value over the bucket's max_value_size");
    eventually(WAIT, "the value to expire", || async {
        let got = kv(&client, json!([{"op": "get", "bucket": "CARS", "key": "car-1"}])).await;
        (got[0] == json!({"missing": true})).then_some(())
    })
    .await;
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    assert!(output.contains("key-value bucket created"), "{output}");
}

#[tokio::test]
async fn a_bucket_that_exists_with_other_settings_stops_the_start() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    let config = jetstream::kv::Config { bucket: "SEEN".into(), history: 1, ..Default::default() };
    js.create_key_value(config).await.expect("create the bucket");
    let (status, output) = Host::start_failing(&faulty_jobs(nats.url(), PLUGIN, ROUTE), WAIT).await;
    assert!(!status.success());
    assert!(output.contains("bucket `SEEN`") && output.contains("history: server 1, file 5"), "{output}");
}

/// The bucket goes away mid-load (deleted, as a store that is down looks to a
/// writer): the writes fail, the messages are retried, and once the bucket is
/// back every one is handled. Nothing is lost or dead-lettered.
#[tokio::test]
async fn a_store_that_is_away_means_retries_then_every_message_handled() {
    const HALF: usize = 50;
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let route = format!(
        "{ROUTE}\n[[routes]]\nname = \"jobs\"\nplugin = \"faulty\"\nstream = \"JOBS\"\nmax_deliver = -1\nretry = {{ delays = [\"200ms\"] }}\n"
    );
    // faulty_jobs declares the `jobs` route too: only one of the two is wanted.
    let config =
        faulty_jobs(nats.url(), PLUGIN, &route).replacen("[[routes]]\nname = \"jobs\"\nplugin = \"faulty\"\nstream = \"JOBS\"\n\n", "", 1);
    let host = Host::start(&config).await;
    create_stream(&js, "DONE", &["done.>"]).await;
    let job = |n: usize| json!({"n": n, "publish": ["done.x"], "kv": [{"op": "put", "bucket": "SEEN", "key": format!("job-{n}"), "value": n.to_string()}]});

    publish_many(&js, "jobs.n", HALF, |i| job(i).to_string().into_bytes()).await;
    eventually(WAIT, "the first half handled", || async { (count(&js, "DONE").await == HALF as u64).then_some(()) }).await;

    js.delete_key_value("SEEN").await.expect("delete the bucket");
    publish_many(&js, "jobs.n", HALF, |i| job(HALF + i).to_string().into_bytes()).await;
    eventually(WAIT, "retries while the bucket is away", || async {
        let s = scrape(host.admin_url()).await;
        (s.value("switchyard_messages_total", &[("route", "jobs"), ("outcome", "retry")]) >= 3.0).then_some(())
    })
    .await;
    assert_eq!(count(&js, "DONE").await, HALF as u64, "nothing handled while the bucket is away");

    let config = jetstream::kv::Config { bucket: "SEEN".into(), history: 5, ..Default::default() };
    js.create_key_value(config).await.expect("the bucket back");
    eventually(WAIT, "every message handled", || async { (count(&js, "DONE").await == 2 * HALF as u64).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "nothing dead-lettered");
    let seen = js.get_key_value("SEEN").await.expect("the bucket");
    for n in HALF..2 * HALF {
        assert_eq!(seen.get(format!("job-{n}")).await.expect("get").as_deref(), Some(n.to_string().as_bytes()), "job {n}");
    }
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}
