//! Hosts on a real 3-node nats-server cluster: started together on a fresh
//! cluster, and dead letters kept while the dead-letter stream's node is down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, drained, header, messages, publish_many};
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
    eventually(WAIT, "every poison message dead-lettered", || async {
        let js = js.clone();
        let n = tokio::time::timeout(Duration::from_secs(2), async move { count(&js, "SWITCHYARD_DLQ").await }).await.ok()?;
        (n >= POISON).then_some(())
    })
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
