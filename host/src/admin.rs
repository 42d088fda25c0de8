//! The admin listener (`[admin] listen`): `/metrics` in the Prometheus text
//! format, and the Kubernetes probes `/healthz` and `/readyz`, JSON bodies
//! that say why when the answer is 503. Served by axum on the host's runtime,
//! stopped last at shutdown so the probes see the drain.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::health::Probe;
use crate::telemetry::{Health, Metrics};

/// What the handlers read. The client is set once connected: the probes
/// answer (503, "starting") while the host still waits for NATS.
#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    client: Arc<OnceLock<async_nats::Client>>,
}

impl Shared {
    fn connected(&self) -> bool {
        self.client.get().is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }
}

/// The running listener.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    client: Arc<OnceLock<async_nats::Client>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Listen on `addr` and serve. Called first thing at startup, so a port in use
/// stops the host before it connects anywhere, and the probes answer from then on.
pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>, health: Arc<Health>) -> anyhow::Result<Admin> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("[admin] listen: cannot listen on {addr} (choose another address, port 0, or \"off\")"))?;
    let addr = listener.local_addr().context("the admin listener's address")?;
    let client = Arc::new(OnceLock::new());
    let shared = Shared { metrics, health, client: client.clone() };
    let router =
        Router::new().route("/metrics", get(metrics_text)).route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(shared);
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!("admin listener on {addr} stopped: {err}");
        }
    });
    Ok(Admin { addr, client, stop, task })
}

impl Admin {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The NATS connection whose state `/healthz` and the metrics report.
    pub fn connected(&self, client: async_nats::Client) {
        let _ = self.client.set(client);
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        // A scrape in progress finishes; one that hangs does not hold up the exit.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await;
    }
}

/// A host that fails to start stops listening too.
impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn metrics_text(State(shared): State<Shared>) -> Response {
    let connected = shared.connected();
    shared.metrics.nats_connected.set(i64::from(connected));
    shared.metrics.ready.set(i64::from(shared.health.ready(connected).ok));
    let body = shared.metrics.encode();
    ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], body).into_response()
}

async fn healthz(State(shared): State<Shared>) -> Response {
    answer(shared.health.live(shared.connected()))
}

async fn readyz(State(shared): State<Shared>) -> Response {
    answer(shared.health.ready(shared.connected()))
}

fn answer(probe: Probe) -> Response {
    let status = if probe.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(probe)).into_response()
}
