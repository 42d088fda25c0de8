//! Scenario 11, key-value (issue 19): 50k messages already in a stream, each
//! handled with one `kv_get` and one `kv_put` on a JetStream key-value bucket,
//! then acked. The host's route runs `faulty`, whose message asks for the two
//! operations (its `kv` key); the raw side is a pull consumer with the route's
//! settings doing the same get, put and ack with async-nats, `concurrency`
//! (4) messages at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream;
use futures::StreamExt;
use switchyard::config::Config;
use switchyard::telemetry::Outcome;

use super::jetstream::{rate, raw_messages, stage_payload};
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::median;

const FULL: usize = 50_000;
const SCENARIO: &str = "kv 50k x get + put";
const IN: &str = "BENCH_KV_IN";
const SUBJECT: &str = "bench.kv.in";
const BUCKET: &str = "BENCH_KV";
const KEY: &str = "driver-1";
const VALUE: &str = "{\"latitude\":-6.1950,\"longitude\":106.8230}";

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let n = bench.count(FULL);
    let (body, config) = body(bench)?;
    let js = jetstream::new(bench.plain_client().await?);
    let ops = serde_json::json!({"kv": [
        {"op": "get", "bucket": BUCKET, "key": KEY},
        {"op": "put", "bucket": BUCKET, "key": KEY, "value": VALUE},
    ]});
    let payload = bytes::Bytes::from(serde_json::to_vec(&ops)?);
    let (mut host_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        let (mut raw_run, mut host_run) = ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN));
        if bench.raw_side() {
            stage_payload(&js, &config, SUBJECT, n, payload.clone()).await?;
            raw_run = raw(&js, &config, n).await?;
        }
        if bench.host_side() {
            stage_payload(&js, &config, SUBJECT, n, payload.clone()).await?;
            let host = bench.host("kv", &body).await?;
            let metrics = host.metrics.clone();
            let progress = setup::wait_for(|| metrics.total(Outcome::Ack), n as u64).await;
            host.stop().await;
            host_run = rate(&progress, n)?;
        }
        host_rates.push(host_run.0);
        raw_rates.push(raw_run.0);
        eprintln!(
            "  kv run {}: host {:.0} msg/s ({:.2} µs CPU/msg), raw {:.0} msg/s ({:.2} µs CPU/msg)",
            i + 1,
            host_run.0,
            host_run.1,
            raw_run.0,
            raw_run.1
        );
    }
    let figure = "throughput, kv get + put + ack each";
    Ok(vec![Figure::new(SCENARIO, figure, "msg/s", median(&host_rates), median(&raw_rates), Target::RatioAtLeast(0.80))])
}

fn body(bench: &Bench) -> anyhow::Result<(String, Config)> {
    let body = format!(
        "[[streams]]\nname = \"{IN}\"\nsubjects = [\"bench.kv.>\"]\n\n\
         [[buckets]]\nname = \"{BUCKET}\"\n\n\
         [plugins.kv]\npath = \"{}\"\nkv = [\"{BUCKET}\"]\n\n\
         [[routes]]\nname = \"kv\"\nplugin = \"kv\"\nstream = \"{IN}\"\n",
        bench.plugin("faulty")?.display()
    );
    let path = bench.write_config("kv", &body)?;
    let config = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    Ok((body, config))
}

async fn raw(js: &jetstream::Context, config: &Config, n: usize) -> anyhow::Result<(f64, f64)> {
    let route = &config.routes[0];
    let bucket = match js.get_key_value(BUCKET).await {
        Ok(bucket) => bucket,
        // As the host creates it from `[[buckets]]` defaults, so its check finds no difference.
        Err(_) => js.create_key_value(jetstream::kv::Config { bucket: BUCKET.into(), history: 1, ..Default::default() }).await?,
    };
    let messages = raw_messages(js, IN, route).await?;
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(messages.for_each_concurrent(route.concurrency, move |msg| {
        let (counted, bucket) = (counted.clone(), bucket.clone());
        async move {
            let Ok(msg) = msg else { return };
            let done = bucket.entry(KEY).await.is_ok() && bucket.put(KEY, VALUE.into()).await.is_ok();
            if done && msg.ack().await.is_ok() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
    let progress = setup::wait_for(|| count.load(Ordering::Relaxed), n as u64).await;
    task.abort();
    rate(&progress, n)
}
