//! Scenario 10, JetStream forward (the transform shape): 100k × 128 B already in
//! a stream, each consumed, published on into a second stream with its
//! confirmation awaited, then acked. The host's route runs `faulty` set to
//! publish the payload once (about the least a plugin that forwards can do);
//! the raw side is a pull consumer with the route's settings handling
//! `concurrency` (4) messages at a time, each a confirmed publish with the
//! same `Nats-Msg-Id` the host gives it, then the ack. The "raw + plugin call"
//! side (`floor.rs`) is that consumer calling the same plugin first and
//! publishing what it asked to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard::config::Config;
use switchyard::plugin::Pool;

use super::jetstream::{rate, raw_messages, staged_runs};
use crate::floor;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};

const FULL: usize = 100_000;
const SCENARIO: &str = "jetstream forward 100k x 128B";
const IN: &str = "BENCH_FWD";
const SUBJECT: &str = "bench.fwd.in";
const OUT: &str = "bench.fwdout.x";

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(FULL);
    let (body, config) = body(bench)?;
    let js = jetstream::new(bench.plain_client().await?);
    let route = &config.routes[0];
    let pool = floor::pool_of(bench, &config, "forward", route.concurrency).await?;
    let raw_run = |pool| raw(&js, &config, n, pool);
    let rates = staged_runs(bench, "forward", &body, &config, SUBJECT, n, setup::payload(), Some(pool), raw_run).await?;
    let figure = "throughput, confirmed publish + ack each";
    Ok(vec![
        Figure::new(SCENARIO, figure, "msg/s", rates.host, rates.raw, Target::RatioAtLeast(0.90)),
        Figure::new(SCENARIO, format!("{figure} vs raw + plugin call"), "msg/s", rates.host, rates.floor, Target::Report),
    ])
}

fn body(bench: &Bench) -> anyhow::Result<(String, Config)> {
    let body = format!(
        "[[streams]]\nname = \"{IN}\"\nsubjects = [\"bench.fwd.>\"]\n\n\
         [[streams]]\nname = \"BENCH_FWD_OUT\"\nsubjects = [\"bench.fwdout.>\"]\n\n\
         [plugins.forward]\npath = \"{}\"\npublish = [\"bench.fwdout.>\"]\nconfig = {{ publish = [\"{OUT}\"] }}\n\n\
         [[routes]]\nname = \"forward\"\nplugin = \"forward\"\nstream = \"{IN}\"\n",
        bench.plugin("faulty")?.display()
    );
    bench.loaded_config("forward", body)
}

/// The raw consumer; with `pool`, each message is first given to the plugin and
/// what it asked to publish is published instead of the message itself.
async fn raw(js: &jetstream::Context, config: &Config, n: usize, pool: Option<Arc<Pool>>) -> anyhow::Result<(f64, f64)> {
    let route = &config.routes[0];
    let messages = raw_messages(js, IN, route).await?;
    let count = Arc::new(AtomicU64::new(0));
    let (counted, js) = (count.clone(), js.clone());
    let (concurrency, max_deliver) = (route.concurrency, route.max_deliver);
    let task = tokio::spawn(messages.for_each_concurrent(concurrency, move |msg| {
        let (counted, js, pool) = (counted.clone(), js.clone(), pool.clone());
        async move {
            let Ok(msg) = msg else { return };
            let Ok(info) = msg.info() else { return };
            let id = format!("{IN}:{}:0", info.stream_sequence);
            let publishes = match &pool {
                Some(pool) => match floor::publishes(pool, &switchyard::from_jetstream(&msg, max_deliver)).await {
                    Ok(publishes) => publishes.into_iter().map(|p| (p.subject, p.payload.into())).collect(),
                    Err(_) => return,
                },
                None => vec![(OUT.to_owned(), msg.payload.clone())],
            };
            for (subject, payload) in publishes {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                let confirmed = match js.publish_with_headers(subject, headers, payload).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if !confirmed {
                    return;
                }
            }
            if msg.ack().await.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
    let progress = setup::wait_for(|| count.load(Ordering::Relaxed), n as u64).await;
    task.abort();
    rate(&progress, n)
}
