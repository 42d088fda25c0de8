//! The route's consumer as the server sees it — pending, ack pending,
//! redelivered — read every `[admin] consumer_info_interval` for the metrics
//! (one request per route per interval, none per message). A consumer the
//! server no longer has marks the route down for `/readyz` until it is back.

use async_nats::jetstream::consumer::pull;

use super::Consumer;
use crate::route::Outputs;

pub(super) async fn watch(c: &Consumer, out: &Outputs, cancel: &tokio_util::sync::CancellationToken) {
    let gauges = out.metrics.consumer(&c.route.name);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(out.consumer_info_interval) => {}
        }
        match out.js.get_consumer_from_stream::<pull::Config, _, _>(&c.spec.durable, &c.spec.stream).await {
            Ok(consumer) => {
                let info = consumer.cached_info();
                gauges.pending.set(info.num_pending as i64);
                gauges.ack_pending.set(info.num_ack_pending as i64);
                gauges.redelivered.set(info.num_redelivered as i64);
                out.health.route_up(&c.route.name);
            }
            Err(err) => {
                tracing::debug!(route = %c.route.name, "reading consumer info: {err}");
                if err.to_string().contains("not found") {
                    let why = format!("consumer `{}` on stream `{}` not found", c.spec.durable, c.spec.stream);
                    out.health.route_down(&c.route.name, why);
                }
            }
        }
    }
}
