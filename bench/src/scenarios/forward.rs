//! Scenario 10, JetStream forward (the transform shape): 100k × 128 B already in
//! a stream, each consumed, published on into a second stream with its
//! confirmation awaited, then acked. The host's route runs `faulty` set to
//! publish the payload once (about the least a plugin that forwards can do);
//! the raw side is a pull consumer with the route's settings handling
//! `concurrency` (4) messages at a time, each a confirmed publish with the
//! same `Nats-Msg-Id` the host gives it, then the ack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard::config::Config;
use switchyard::telemetry::Outcome;

use super::jetstream::{rate, raw_messages, stage};
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::median;

const FULL: usize = 100_000;
const SCENARIO: &str = "jetstream forward 100k x 128B";
const IN: &str = "BENCH_FWD";
const SUBJECT: &str = "bench.fwd.in";
const OUT: &str = "bench.fwdout.x";

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(FULL);
    let (body, config) = body(bench)?;
    let js = jetstream::new(bench.plain_client().await?);
    let (mut host_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        let (mut raw_run, mut host_run) = ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN));
        if bench.raw_side() {
            stage(&js, &config, SUBJECT, n).await?;
            raw_run = raw(&js, &config, n).await?;
        }
        if bench.host_side() {
            stage(&js, &config, SUBJECT, n).await?;
            let host = bench.host("forward", &body).await?;
            let metrics = host.metrics.clone();
            let progress = setup::wait_for(|| metrics.total(Outcome::Ack), n as u64).await;
            host.stop().await;
            host_run = rate(&progress, n)?;
        }
        host_rates.push(host_run.0);
        raw_rates.push(raw_run.0);
        eprintln!(
            "  forward run {}: host {:.0} msg/s ({:.2} µs CPU/msg), raw {:.0} msg/s ({:.2} µs CPU/msg)",
            i + 1,
            host_run.0,
            host_run.1,
            raw_run.0,
            raw_run.1
        );
    }
    let figure = "throughput, confirmed publish + ack each";
    Ok(vec![Figure::new(SCENARIO, figure, "msg/s", median(&host_rates), median(&raw_rates), Target::RatioAtLeast(0.90))])
}

fn body(bench: &Bench) -> anyhow::Result<(String, Config)> {
    let body = format!(
        "[[streams]]\nname = \"{IN}\"\nsubjects = [\"bench.fwd.>\"]\n\n\
         [[streams]]\nname = \"BENCH_FWD_OUT\"\nsubjects = [\"bench.fwdout.>\"]\n\n\
         [plugins.forward]\npath = \"{}\"\npublish = [\"bench.fwdout.>\"]\nconfig = {{ publish = [\"{OUT}\"] }}\n\n\
         [[routes]]\nname = \"forward\"\nplugin = \"forward\"\nstream = \"{IN}\"\n",
        bench.plugin("faulty")?.display()
    );
    let path = bench.write_config("forward", &body)?;
    let config = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    Ok((body, config))
}

async fn raw(js: &jetstream::Context, config: &Config, n: usize) -> anyhow::Result<(f64, f64)> {
    let route = &config.routes[0];
    let messages = raw_messages(js, IN, route).await?;
    let count = Arc::new(AtomicU64::new(0));
    let (counted, js) = (count.clone(), js.clone());
    let concurrency = route.concurrency;
    let task = tokio::spawn(messages.for_each_concurrent(concurrency, move |msg| {
        let (counted, js) = (counted.clone(), js.clone());
        async move {
            let Ok(msg) = msg else { return };
            let Ok(info) = msg.info() else { return };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{IN}:{}:0", info.stream_sequence).as_str());
            let confirmed = match js.publish_with_headers(OUT, headers, msg.payload.clone()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            };
            if confirmed && msg.ack().await.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
    let progress = setup::wait_for(|| count.load(Ordering::Relaxed), n as u64).await;
    task.abort();
    rate(&progress, n)
}
