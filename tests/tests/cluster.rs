//! Hosts on a real 3-node nats-server cluster: started together on a fresh
//! cluster, and dead letters kept while the dead-letter stream's node is down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, drained, header, messages, publish_many, try_count};
use switchyard_tests::{Cluster, Host, eventually, plugin};

const WAIT: Duration = Duration::from_secs(60);

/// A replicated JOBS work queue consumed by the faulty plugin; `dlq` and
/// `route` are added to `[dead_letter]` and the route.
fn jobs(urls: &str, dlq: &str, plugin_config: &str, route: &str) -> String {
    format!(
        r#"{}
[dead_letter]
{dlq}

[[streams]]
name = "JOBS"
subjects = ["jobs.>"]
retention = "workqueue"
replicas = 3

[plugins.faulty]
path = "{}"
config = {plugin_config}

[[routes]]
name = "jobs"
plugin = "faulty"
stream = "JOBS"
{route}
"#,
        preamble(urls),
        plugin("faulty").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_started_together_on_a_fresh_cluster_all_come_up() {
    let cluster = Cluster::start().await;
    // Each host knows one node, so they create the streams through different ones.
    let configs: Vec<String> = (0..3).map(|i| jobs(&cluster.url(i), "replicas = 3", "{}", "")).collect();
    let (a, b, c) = tokio::join!(Host::start(&configs[0]), Host::start(&configs[1]), Host::start(&configs[2]));

    let js = jetstream::new(cluster.client().await);
    let mut dlq = js.get_stream("SWITCHYARD_DLQ").await.expect("dead-letter stream");
    assert_eq!(dlq.info().await.expect("info").config.num_replicas, 3, "`dead_letter.replicas` applied");
    publish_many(&js, "jobs.x", 300, |i| format!("job {i}").into_bytes()).await;
    drained(&js, "JOBS", "jobs").await;
    // A replicated work-queue stream removes acked messages through its own
    // raft log, a moment after the consumer counts them acked.
    eventually(WAIT, "every job handled and removed", || async { (count(&js, "JOBS").await == 0).then_some(()) }).await;
    for host in [a, b, c] {
        let (status, _) = host.stop().await;
        assert!(status.success());
    }
}

/// The dead-letter stream (one replica) loses its node while poison messages
/// flow: none is given up; each ends in the dead-letter stream once the node
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_wait_for_their_dead_letter_stream() {
    const POISON: u64 = 20;
    let mut cluster = Cluster::start().await;
    let config = jobs(&cluster.urls(), "", "{ action = \"reject\" }", "max_deliver = 2\nretry = { delays = [\"300ms\"] }");
    let host = Host::start(&config).await;
    let js = jetstream::new(cluster.client().await);
    let dlq_node = cluster.stream_leader(&js, "SWITCHYARD_DLQ").await;
    cluster.kill(dlq_node);

    // JOBS (three replicas) may be electing a new leader: publish until stored.
    for i in 0..POISON {
        eventually(WAIT, "a poison message stored in JOBS", || async {
            let ack = js.publish("jobs.poison", format!("poison {i}").into()).await.ok()?;
            ack.await.ok().map(|_| ())
        })
        .await;
    }
    // Let the outage outlast what the server's `max_deliver` (2) would allow:
    // at least three deliveries per message.
    let started = Instant::now();
    loop {
        let delivered = js.get_stream("JOBS").await.ok().map(|s| async move { s.consumer_info("jobs").await.ok() });
        let delivered = match delivered {
            Some(info) => info.await.map_or(0, |i| i.delivered.consumer_sequence),
            None => 0,
        };
        if delivered >= 3 * POISON || started.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.restart(dlq_node);
    eventually(WAIT, "every poison message dead-lettered", || async { (try_count(&js, "SWITCHYARD_DLQ").await? >= POISON).then_some(()) })
        .await;
    drained(&js, "JOBS", "jobs").await;
    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    let sequences: BTreeSet<&str> = letters.iter().map(|m| header(m, "Switchyard-Stream-Sequence")).collect();
    assert_eq!(letters.len() as u64, POISON, "each poison message dead-lettered once");
    assert_eq!(sequences.len() as u64, POISON);
    let (_, output) = host.stop().await;
    assert!(output.contains("cannot store the dead letter"), "an ERROR says why:\n{output}");
    assert!(!output.contains("dead_letter_failures=0"), "the failures are counted:\n{output}");
}

/// The key-value bucket (one replica) loses its node while jobs write to it:
/// the writes find the store unavailable, the jobs are retried, and once the
/// node is back every one is handled and its value stored. Nothing is lost
/// or dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_whose_node_is_down_means_retries_then_every_job_handled() {
    const HALF: usize = 30;
    let mut cluster = Cluster::start().await;
    let plugin_config = "{}\nkv = [\"SEEN\"]\npublish = [\"done.>\"]";
    let route = r#"max_deliver = -1
retry = { delays = ["300ms"] }

[[buckets]]
name = "SEEN"
replicas = 1

[[streams]]
name = "DONE"
subjects = ["done.>"]
replicas = 3
"#;
    let host = Host::start(&jobs(&cluster.urls(), "replicas = 3", plugin_config, route)).await;
    let js = jetstream::new(cluster.client().await);
    let job = |n: usize| {
        let put = serde_json::json!({"op": "put", "bucket": "SEEN", "key": format!("job-{n}"), "value": n.to_string()});
        serde_json::json!({"n": n, "publish": ["done.x"], "kv": [put]}).to_string().into_bytes()
    };
    publish_many(&js, "jobs.n", HALF, job).await;
    eventually(WAIT, "the first half handled", || async { (count(&js, "DONE").await == HALF as u64).then_some(()) }).await;

    let bucket_node = cluster.stream_leader(&js, "KV_SEEN").await;
    cluster.kill(bucket_node);
    // JOBS (three replicas) may be electing a new leader: publish until stored.
    for n in HALF..2 * HALF {
        eventually(WAIT, "a job stored in JOBS", || async {
            let ack = js.publish("jobs.n", job(n).into()).await.ok()?;
            ack.await.ok().map(|_| ())
        })
        .await;
    }
    eventually(WAIT, "retries while the bucket's node is down", || async {
        let s = switchyard_tests::admin::scrape(host.admin_url()).await;
        (s.value("switchyard_kv_calls_total", &[("plugin", "faulty"), ("op", "put"), ("result", "unavailable")]) >= 3.0).then_some(())
    })
    .await;
    let done = eventually(WAIT, "the count of DONE", || try_count(&js, "DONE")).await;
    assert_eq!(done, HALF as u64, "nothing handled while the bucket is away");

    cluster.restart(bucket_node);
    eventually(WAIT, "every job handled", || async { (try_count(&js, "DONE").await? == 2 * HALF as u64).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    let dead = eventually(WAIT, "the count of dead letters", || try_count(&js, "SWITCHYARD_DLQ")).await;
    assert_eq!(dead, 0, "nothing dead-lettered");
    let seen = js.get_key_value("SEEN").await.expect("the bucket");
    for n in 0..2 * HALF {
        assert_eq!(seen.get(format!("job-{n}")).await.expect("get").as_deref(), Some(n.to_string().as_bytes()), "job {n}");
    }
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}
