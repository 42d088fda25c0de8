//! Timer routes: a tick every `every` or where `cron` matches, each handled by
//! one host of a fleet.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use switchyard_tests::host::preamble;
use switchyard_tests::{Host, NatsServer, plugin};

/// `faulty` on a timer route (`schedule` is its `every` or `cron` line),
/// publishing each tick it gets to `ticks.x`.
fn config(url: &str, schedule: &str) -> String {
    format!(
        "{}[plugins.faulty]\npath = \"{}\"\npublish = [\"ticks.>\"]\nconfig = {{ publish = [\"ticks.x\"] }}\n\n\
         [[routes]]\nname = \"report\"\nplugin = \"faulty\"\n{schedule}\n",
        preamble(url),
        plugin("faulty").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_fire_each_tick_once() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let mut ticks = client.subscribe("ticks.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let config = config(nats.url(), "every = \"1s\"");
    let hosts = futures::future::join_all((0..3).map(|_| Host::start(&config))).await;

    // Count each scheduled tick for a while once every host is up.
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let watching = tokio::time::sleep(Duration::from_millis(5_500));
    tokio::pin!(watching);
    loop {
        tokio::select! {
            () = &mut watching => break,
            msg = ticks.next() => {
                let msg = msg.expect("subscription open");
                let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("a tick payload");
                assert_eq!(body["route"], "report");
                *seen.entry(body["scheduled_unix_ms"].as_u64().expect("scheduled_unix_ms")).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "ticks handled more than once: {twice:?}");
    assert!(seen.len() >= 4, "a tick a second: {seen:?}");
    let times: Vec<u64> = seen.keys().copied().collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "consecutive seconds, none skipped: {times:?}");
    assert!(times.iter().all(|t| t % 1000 == 0), "on whole seconds: {times:?}");
    for host in hosts {
        let (status, output) = host.stop().await;
        assert!(status.success(), "{output}");
        assert!(output.contains("route report: timer every 1s"), "{output}");
    }
}

/// Every second second by a cron expression with seconds: the ticks fall on
/// even seconds, and the payload names the expression.
#[tokio::test]
async fn a_cron_route_ticks_where_its_expression_matches() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let mut ticks = client.subscribe("ticks.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let host = Host::start(&config(nats.url(), "cron = \"*/2 * * * * *\"")).await;
    let mut times = Vec::new();
    while times.len() < 2 {
        let msg = switchyard_tests::within(Duration::from_secs(10), "a tick", ticks.next()).await.expect("subscription open");
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("a tick payload");
        assert_eq!(body["cron"], "*/2 * * * * *", "{body}");
        times.push(body["scheduled_unix_ms"].as_u64().expect("scheduled_unix_ms"));
    }
    assert!(times.iter().all(|t| t % 2000 == 0) && times[1] - times[0] == 2000, "{times:?}");
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    assert!(output.contains("route report: timer cron `*/2 * * * * *`"), "{output}");
}
