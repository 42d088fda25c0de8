//! The NATS client connection, built from `[nats]`.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::{ConnectOptions, Event};

use crate::config::NatsConfig;
use crate::telemetry::Metrics;

/// Connect to `url` with the credentials and limits of `config`. Connection state
/// changes are logged; slow-consumer events (messages dropped by a full
/// subscription buffer) are logged and counted, because they are otherwise silent.
pub async fn connect(config: &NatsConfig, url: &str, metrics: Arc<Metrics>) -> anyhow::Result<async_nats::Client> {
    let mut options = match &config.credentials {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .with_context(|| format!("reading NATS credentials file `{}`", path.display()))?,
        None => ConnectOptions::new(),
    };
    options = options
        .name(&config.name)
        .subscription_capacity(config.subscription_capacity)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(config.max_reconnects);
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
    options.connect(url).await.with_context(|| format!("connecting to NATS at {url}"))
}
