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

use super::jetstream::{rate, raw_messages, staged_runs};
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};

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
    let rates = staged_runs(bench, "kv", &body, &config, SUBJECT, n, payload, None, |_| raw(&js, &config, n)).await?;
    let figure = "throughput, kv get + put + ack each";
    Ok(vec![Figure::new(SCENARIO, figure, "msg/s", rates.host, rates.raw, Target::RatioAtLeast(0.80))])
}

fn body(bench: &Bench) -> anyhow::Result<(String, Config)> {
    let body = format!(
        "[[streams]]\nname = \"{IN}\"\nsubjects = [\"bench.kv.>\"]\n\n\
         [[buckets]]\nname = \"{BUCKET}\"\n\n\
         [plugins.kv]\npath = \"{}\"\nkv = [\"{BUCKET}\"]\n\n\
         [[routes]]\nname = \"kv\"\nplugin = \"kv\"\nstream = \"{IN}\"\n",
        bench.plugin("faulty")?.display()
    );
    bench.loaded_config("kv", body)
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
