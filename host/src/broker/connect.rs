//! The NATS client connection, built from `[nats]`.

use std::sync::Arc;
use std::time::Instant;

use async_nats::{ConnectErrorKind, ConnectOptions, Event};

use super::startup::{Failure, retrying};
use crate::config::NatsConfig;
use crate::telemetry::Metrics;

/// Connect to one of `urls` (a cluster's nodes: the client tries each, and
/// later reconnects to whichever is up) with the credentials and limits of
/// `config`. A NATS that is not reachable yet is waited for, with a log line
/// per try, until `deadline`; a refused login or a bad TLS setup ends at once.
pub async fn connect(config: &NatsConfig, urls: &[String], deadline: Instant, metrics: Arc<Metrics>) -> anyhow::Result<async_nats::Client> {
    let shown = urls.join(",");
    retrying(&format!("connecting to NATS at {shown}"), deadline, || async {
        connect_once(config, urls, metrics.clone()).await.map_err(|err| match err.kind() {
            ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns | ConnectErrorKind::MaxReconnects => {
                Failure::Transient(err.into())
            }
            _ => Failure::Fatal(err.into()),
        })
    })
    .await
}

async fn connect_once(config: &NatsConfig, urls: &[String], metrics: Arc<Metrics>) -> Result<async_nats::Client, async_nats::ConnectError> {
    let mut options = client_options(config).await?;
    options = options
        .subscription_capacity(config.subscription_capacity)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(config.max_reconnects);
    options = options.event_callback(move |event| {
        let metrics = metrics.clone();
        async move {
            match event {
                Event::Connected => tracing::info!("nats: connected"),
                Event::Disconnected => tracing::warn!("nats: disconnected; reconnecting"),
                Event::SlowConsumer(sid) => {
                    Metrics::bump(&metrics.slow_consumer_events);
                    tracing::warn!(subscription = sid, "nats: slow consumer, messages were dropped");
                }
                other => tracing::warn!("nats: {other}"),
            }
        }
    });
    options.connect(urls).await
}

/// The client name, authentication and TLS of `[nats]`: what every connection
/// to the operator's NATS needs, the host's and the CLI's alike.
pub async fn client_options(config: &NatsConfig) -> Result<ConnectOptions, async_nats::ConnectError> {
    let mut options = match &config.credentials {
        Some(path) => ConnectOptions::with_credentials_file(path).await.map_err(|e| {
            async_nats::ConnectError::with_source(
                ConnectErrorKind::Authentication,
                anyhow::anyhow!("reading NATS credentials file `{}`: {e}", path.display()),
            )
        })?,
        None => ConnectOptions::new(),
    };
    options = options.name(&config.name);
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(seed) = &config.nkey {
        options = options.nkey(seed.clone());
    }
    if let Some(tls) = &config.tls {
        if let Some(ca) = &tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options = options.require_tls(tls.required);
    }
    Ok(options)
}
