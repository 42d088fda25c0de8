//! The fleet tests' common parts (tests/tests/fleet.rs): a fleet of hosts on
//! the 3-node cluster, its load, and the checks every fleet test makes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admin::scrape;
use crate::host::preamble;
use crate::js::{count, drained, publish_many};
use crate::ledger::{Ledger, Tally, ids_in};
use crate::{Cluster, Host, eventually, plugin, within};
use async_nats::jetstream::{self, message::PublishMessage};
use futures::StreamExt;

/// One test at a time (see the module doc).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const WAIT: Duration = Duration::from_secs(60);
pub const HOSTS: usize = 3;
/// Messages each host handles at once, where the tests bound duplicates by it.
pub const CONCURRENCY: usize = 4;
/// What a host killed or frozen may have handled without its ack reaching the
/// server, so handled again elsewhere: per worker, the message it was handling
/// and the one whose ack still waited in the client's outgoing buffer.
pub const UNACKED_AT_MOST: usize = 2 * CONCURRENCY;
/// How many times the usual load `three_hosts_share_the_load` sends: 4 under
/// `make soak` (SWITCHYARD_SOAK=1), else 1.
pub fn soak() -> usize {
    if std::env::var_os("SWITCHYARD_SOAK").is_some() { 4 } else { 1 }
}

/// Warm-up messages' ids start here, clear of every test's own.
pub const WARM_UP: u64 = 1_000_000;

/// The runtime.toml of host `h<host>` of a fleet on `urls`:
/// - a replicated work queue JOBS consumed by the `faulty` plugin on route
///   `jobs`, which publishes each message it handles to `seen.h<host>` (the
///   ledger) and, when `done`, to `done.h<host>`, captured by the replicated
///   stream DONE; `plugin_config` is added to faulty's config, `route` to the
///   route;
/// - a core route `work` in queue group `fleet` answering requests with their
///   payload.
pub fn config(urls: &str, host: usize, done: bool, plugin_config: &str, route: &str) -> String {
    let outputs = if done { format!(r#""done.h{host}", "seen.h{host}""#) } else { format!(r#""seen.h{host}""#) };
    let faulty_config: Vec<String> =
        [format!("publish = [{outputs}]"), plugin_config.to_owned()].into_iter().filter(|s| !s.is_empty()).collect();
    format!(
        r#"{}
[dead_letter]
replicas = 3

[[streams]]
name = "JOBS"
subjects = ["jobs.>"]
retention = "workqueue"
replicas = 3

[[streams]]
name = "DONE"
subjects = ["done.>"]
replicas = 3

[plugins.faulty]
path = "{faulty}"
publish = ["seen.>", "done.>"]
config = {{ {} }}

[plugins.answer]
path = "{faulty}"
config = {{ action = "reply" }}

[[routes]]
name = "jobs"
plugin = "faulty"
stream = "JOBS"
{route}

[[routes]]
name = "work"
plugin = "answer"
subjects = ["work.>"]
queue = "fleet"
"#,
        preamble(urls),
        faulty_config.join(", "),
        faulty = plugin("faulty").display(),
    )
}

/// Start every config at once; host `i` is `h<i>`.
pub async fn start_fleet(configs: &[String]) -> Vec<Host> {
    futures::future::join_all(configs.iter().map(|c| Host::start(c))).await
}

/// Stop every host (SIGTERM); each must exit cleanly.
pub async fn stop_fleet(hosts: Vec<Host>) {
    for (i, (status, output)) in futures::future::join_all(hosts.into_iter().map(Host::stop)).await.into_iter().enumerate() {
        assert!(status.success(), "h{i} did not stop cleanly:\n{output}");
    }
}

/// A message's payload: its id, as the ledger reads it.
pub fn payload(id: usize) -> Vec<u8> {
    format!(r#"{{"id":{id}}}"#).into_bytes()
}

/// Publish warm-up messages one at a time, each awaited in the ledger, until
/// every one of `hosts` hosts has handled one; then forget them. Returns how
/// long it took.
pub async fn warm_up(js: &jetstream::Context, ledger: &Ledger, hosts: usize) -> Duration {
    let started = Instant::now();
    let mut id = WARM_UP;
    within(WAIT, "every host to handle a warm-up message", async {
        loop {
            let seen: BTreeSet<String> = ledger.handlings().into_iter().map(|h| h.host).collect();
            if seen.len() == hosts {
                break;
            }
            publish_many(js, "jobs.warm-up", 1, |_| payload(id as usize)).await;
            id += 1;
            let handled = (id - WARM_UP) as usize;
            eventually(WAIT, "a warm-up message handled", || async { (ledger.distinct() >= handled).then_some(()) }).await;
        }
    })
    .await;
    ledger.reset();
    started.elapsed()
}

/// Each host's WARN and ERROR lines, for a failure's message.
pub fn warnings(hosts: &[Host]) -> String {
    let mut out = String::new();
    for (i, host) in hosts.iter().enumerate() {
        for line in host.output().lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")) {
            out.push_str(&format!("h{i}| {line}\n"));
        }
    }
    out
}

/// `switchyard_messages_total{route, outcome}` of each host.
pub async fn messages_total(hosts: &[Host], route: &str, outcome: &str) -> Vec<u64> {
    let mut totals = Vec::new();
    for host in hosts {
        totals.push(scrape(host.admin_url()).await.value("switchyard_messages_total", &[("route", route), ("outcome", outcome)]) as u64);
    }
    totals
}

/// `after - before`, host by host.
pub fn since(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// The ids in the dead-letter stream.
pub async fn dead_lettered(js: &jetstream::Context) -> BTreeSet<u64> {
    ids_in(js, "SWITCHYARD_DLQ").await.into_iter().collect()
}

/// Wait until every message left the work queue: nothing pending or awaiting
/// an ack in the consumer, and (a replicated work queue removes acked
/// messages through its own raft log, a moment later) nothing in the stream.
pub async fn nothing_left(js: &jetstream::Context) {
    drained(js, "JOBS", "jobs").await;
    eventually(WAIT, "the work queue to be empty", || async { (count(js, "JOBS").await == 0).then_some(()) }).await;
}

/// Every id handled or dead-lettered, and nothing else handled.
pub fn assert_complete(tally: &Tally, dead: &BTreeSet<u64>) {
    let sample: Vec<_> = tally.missing.iter().take(20).collect();
    assert!(
        tally.missing.is_empty(),
        "{} of {} messages lost (neither handled nor dead-lettered), e.g. {sample:?}",
        tally.missing.len(),
        tally.published
    );
    assert_eq!(tally.unknown, 0, "handlings of ids never published");
    assert!(dead.iter().all(|id| *id < tally.published as u64 || *id >= WARM_UP), "dead letters of ids never published: {dead:?}");
}

/// A publisher in the background: ids from 0 to `n` (or until stopped) to
/// `jobs.<id>`, `rate` a second.
pub struct Load {
    task: tokio::task::JoinHandle<(usize, Duration)>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Each publish carries `Nats-Msg-Id: job-<id>`, so one retried across a
    /// leader election is stored once, and is retried until stored.
    pub fn start(js: jetstream::Context, n: usize, rate: usize) -> Load {
        const TICK: Duration = Duration::from_millis(100);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let per_tick = (rate / 10).max(1);
            let mut ticks = tokio::time::interval(TICK);
            let mut longest = Duration::ZERO;
            let mut next = 0;
            while next < n && !stopped.load(Ordering::Relaxed) {
                ticks.tick().await;
                let started = Instant::now();
                let mut unstored: Vec<usize> = (next..(next + per_tick).min(n)).collect();
                next += unstored.len();
                while !unstored.is_empty() {
                    assert!(started.elapsed() < WAIT, "publishes not stored within {WAIT:?}: {unstored:?}");
                    let mut acks = Vec::new();
                    for id in unstored.drain(..) {
                        let msg = PublishMessage::build().payload(payload(id).into()).message_id(format!("job-{id}"));
                        acks.push((id, js.send_publish(format!("jobs.{id}"), msg).await));
                    }
                    for (id, ack) in acks {
                        let stored = match ack {
                            Ok(ack) => ack.await.is_ok(),
                            Err(_) => false,
                        };
                        if !stored {
                            unstored.push(id);
                        }
                    }
                    if !unstored.is_empty() {
                        tokio::time::sleep(TICK).await;
                    }
                }
                longest = longest.max(started.elapsed());
            }
            (next, longest)
        });
        Load { task, stop }
    }

    /// Wait for the publisher (stopping it first if `stop`): how many ids it
    /// published (`0..n`), and the longest a tick's publishes took to be
    /// stored (the publisher's own stall).
    pub async fn finish(self, stop: bool) -> (usize, Duration) {
        self.stop.store(stop, Ordering::Relaxed);
        within(WAIT, "the publisher", self.task).await.expect("publisher task")
    }
}

/// Send `n` requests to the core route, spread over one client per node, and
/// check each reply is its request's payload.
pub async fn requests(cluster: &Cluster, n: usize) {
    let clients: Vec<async_nats::Client> = futures::future::join_all((0..HOSTS).map(|i| async move {
        within(Duration::from_secs(10), "a requester", async_nats::connect(cluster.url(i))).await.expect("requester")
    }))
    .await;
    let answered = futures::stream::iter(0..n)
        .map(|k| {
            let client = clients[k % clients.len()].clone();
            async move {
                let body = format!("request {k}");
                match client.request(format!("work.{k}"), body.clone().into()).await {
                    Ok(reply) => assert_eq!(reply.payload, body.as_bytes(), "request {k}: the reply is its payload"),
                    Err(err) => panic!("request {k} not answered: {err}"),
                }
            }
        })
        .buffer_unordered(32)
        .count();
    assert_eq!(within(WAIT * soak() as u32, "every request answered", answered).await, n);
}
