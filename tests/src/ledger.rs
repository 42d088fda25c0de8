//! A ledger of handlings, for tests of a fleet of hosts: which message was
//! handled, by which host, at which attempt, when.
//!
//! The `faulty` plugin with `publish = ["seen.<host>"]` publishes the payload
//! of every message it handles (`{"id": n}`, the message's id in the test) to
//! `seen.<host>`, with header `faulty-attempt`. The host sends it when the
//! call ends in an ack; `seen.>` is no stream's subject, so it goes out at
//! once as a plain core message, not deduplicated, before the message's
//! publishes into streams are confirmed and the message is acked, on the same
//! connection. So the ledger sees every successful call, duplicates included
//! (and a call whose publish into a stream then failed, to be retried), and a
//! message acked is a message in the ledger — as long as no nats-server dies
//! with it in transit (then check a stream instead, see [`ids_in`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;

use crate::Cluster;

/// One successful call of the plugin.
#[derive(Debug, Clone)]
pub struct Handling {
    pub id: u64,
    /// The last token of the subject: the host's name.
    pub host: String,
    /// `Message.attempt` of the call (1 for a first delivery).
    pub attempt: u64,
    /// When the ledger received it.
    pub at: Instant,
}

#[derive(Default)]
struct Entries {
    handlings: Vec<Handling>,
    /// The distinct ids among them.
    ids: HashSet<u64>,
    /// Probes received, by the node they were published through.
    probes: BTreeSet<usize>,
}

/// Every handling published on `seen.>`, collected by a task of its own.
pub struct Ledger {
    entries: Arc<Mutex<Entries>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a ledger says about a set of published ids.
#[derive(Debug)]
pub struct Tally {
    pub published: usize,
    /// Distinct ids handled.
    pub handled: usize,
    /// Handlings, duplicates included.
    pub handlings: usize,
    /// Handlings beyond the first of each id.
    pub duplicates: usize,
    /// Published ids neither handled nor among the dead-lettered.
    pub missing: Vec<u64>,
    /// Ids handled more than once, with the hosts that handled them.
    pub twice: BTreeMap<u64, Vec<String>>,
    /// Distinct ids each host handled.
    pub per_host: BTreeMap<String, usize>,
    /// Handlings of ids that were not published (must be none).
    pub unknown: usize,
}

impl Ledger {
    /// Subscribe to `seen.>` through node `node` of `cluster`, then wait until
    /// a probe published through every node arrives: the subscription's
    /// interest has reached the whole cluster, so no handling published on
    /// another node is dropped for want of it.
    pub async fn watch(cluster: &Cluster, node: usize) -> Ledger {
        let client = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 20)
            .connect(cluster.url(node))
            .await
            .unwrap_or_else(|e| panic!("ledger: connect to node {node}: {e}"));
        let mut sub = client.subscribe("seen.>").await.expect("ledger: subscribe");
        client.flush().await.expect("ledger: flush");
        let entries = Arc::new(Mutex::new(Entries::default()));
        let task = {
            let entries = entries.clone();
            tokio::spawn(async move {
                // The client lives as long as the task.
                let _client = client;
                while let Some(msg) = sub.next().await {
                    let at = Instant::now();
                    let mut entries = entries.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(node) = msg.payload.strip_prefix(b"probe ").and_then(|n| std::str::from_utf8(n).ok()?.parse().ok()) {
                        entries.probes.insert(node);
                        continue;
                    }
                    let Some(id) = serde_json::from_slice::<serde_json::Value>(&msg.payload).ok().and_then(|v| v["id"].as_u64()) else {
                        continue;
                    };
                    let attempt =
                        msg.headers.as_ref().and_then(|h| h.get("faulty-attempt")).and_then(|v| v.as_str().parse().ok()).unwrap_or(0);
                    let host = msg.subject.rsplit('.').next().unwrap_or_default().to_owned();
                    entries.ids.insert(id);
                    entries.handlings.push(Handling { id, host, attempt, at });
                }
            })
        };
        let ledger = Ledger { entries, task };
        let probes: Vec<async_nats::Client> = futures::future::join_all((0..3).map(|i| async move {
            crate::within(Duration::from_secs(10), "a probe client", async_nats::connect(cluster.url(i))).await.expect("probe client")
        }))
        .await;
        crate::eventually(Duration::from_secs(20), "the ledger's interest to reach every node", || async {
            for (i, probe) in probes.iter().enumerate() {
                if !ledger.lock().probes.contains(&i) {
                    let _ = probe.publish("seen.probe", format!("probe {i}").into()).await;
                    let _ = probe.flush().await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            (ledger.lock().probes.len() == probes.len()).then_some(())
        })
        .await;
        ledger
    }

    /// Forget every handling so far (those of warm-up messages, say, once
    /// each was handled).
    pub fn reset(&self) {
        let mut entries = self.lock();
        entries.handlings.clear();
        entries.ids.clear();
    }

    /// Every handling so far, in the order received.
    pub fn handlings(&self) -> Vec<Handling> {
        self.lock().handlings.clone()
    }

    /// How many distinct ids were handled so far.
    pub fn distinct(&self) -> usize {
        self.lock().ids.len()
    }

    /// Handlings so far, duplicates included.
    pub fn len(&self) -> usize {
        self.lock().handlings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait (bounded) until `n` distinct ids were handled.
    pub async fn until_distinct(&self, n: usize, limit: Duration) {
        let what = format!("{n} distinct messages handled");
        crate::eventually(limit, &what, || async { (self.distinct() >= n).then_some(()) }).await;
    }

    /// Wait until nothing has arrived for `quiet` (bounded by `limit`): a late
    /// duplicate would have arrived by then.
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        crate::eventually(limit, "the ledger to be quiet", || async {
            let last = self.lock().handlings.last().map(|h| h.at);
            last.is_none_or(|at| at.elapsed() >= quiet).then_some(())
        })
        .await;
    }

    /// The ledger against the ids published and those found dead-lettered.
    pub fn tally(&self, published: impl IntoIterator<Item = u64>, dead_lettered: &BTreeSet<u64>) -> Tally {
        let published: BTreeSet<u64> = published.into_iter().collect();
        let entries = self.lock();
        let mut hosts: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for h in &entries.handlings {
            hosts.entry(h.id).or_default().push(h.host.clone());
        }
        let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
        for by in hosts.values() {
            for host in by.iter().collect::<BTreeSet<_>>() {
                *per_host.entry(host.clone()).or_default() += 1;
            }
        }
        Tally {
            published: published.len(),
            handled: hosts.len(),
            handlings: entries.handlings.len(),
            duplicates: entries.handlings.len() - hosts.len(),
            missing: published.iter().copied().filter(|id| !hosts.contains_key(id) && !dead_lettered.contains(id)).collect(),
            twice: hosts.iter().filter(|(_, by)| by.len() > 1).map(|(id, by)| (*id, by.clone())).collect(),
            per_host,
            unknown: entries.handlings.iter().filter(|h| !published.contains(&h.id)).count(),
        }
    }

    /// The longest spell in `[from, to]` in which no handling arrived, and
    /// when it began.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> (Duration, Instant) {
        let mut times: Vec<Instant> = self.lock().handlings.iter().map(|h| h.at).filter(|at| *at > from && *at < to).collect();
        times.sort();
        let mut longest = (Duration::ZERO, from);
        let mut previous = from;
        for at in times.into_iter().chain(std::iter::once(to)) {
            if at - previous > longest.0 {
                longest = (at - previous, previous);
            }
            previous = at;
        }
        longest
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The ids (`{"id": n}` payloads) of every message in `stream`, read with an
/// ordered consumer, duplicates kept.
pub async fn ids_in(js: &jetstream::Context, stream: &str) -> Vec<u64> {
    let total = crate::js::count(js, stream).await as usize;
    if total == 0 {
        return Vec::new();
    }
    let s = js.get_stream(stream).await.unwrap_or_else(|e| panic!("stream {stream}: {e}"));
    let consumer = s.create_consumer(jetstream::consumer::pull::OrderedConfig::default()).await.expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("ordered consumer messages");
    crate::within(Duration::from_secs(60), &format!("reading the {total} messages of {stream}"), async {
        let mut ids = Vec::with_capacity(total);
        while ids.len() < total {
            let msg = messages.next().await.expect("ordered consumer open").expect("a message");
            let value: serde_json::Value = serde_json::from_slice(&msg.payload).expect("a JSON payload");
            ids.push(value["id"].as_u64().expect("an id"));
        }
        ids
    })
    .await
}
