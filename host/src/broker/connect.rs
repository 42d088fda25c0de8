//! The NATS client connection, built from `[nats]`.

use std::sync::Arc;
use std::time::Instant;

use async_nats::rustls::{self, AlertDescription, CertificateError};
use async_nats::{ConnectError, ConnectErrorKind, ConnectOptions, Event, ServerError};

use super::startup::{Failure, retrying};
use crate::config::NatsConfig;
use crate::telemetry::Metrics;

/// Connect to one of `urls` (a cluster's nodes: the client tries each, and
/// later reconnects to whichever is up) with the credentials and limits of
/// `config`. A NATS that is not reachable yet is waited for, with a log line
/// per try, until `deadline`; a refused login or a failed TLS handshake ends
/// at once, with an error that names the `[nats]` key to check.
pub async fn connect(config: &NatsConfig, urls: &[String], deadline: Instant, metrics: Arc<Metrics>) -> anyhow::Result<async_nats::Client> {
    let shown = urls.join(",");
    retrying(&format!("connecting to NATS at {shown}"), deadline, || async {
        connect_once(config, urls, metrics.clone()).await.map_err(|err| classify(config, err))
    })
    .await
}

/// Why a connection attempt failed, as [`connect`] reports it (naming the
/// `[nats]` key to check), for a client that tries once: the CLI.
pub fn describe_failure(config: &NatsConfig, err: ConnectError) -> anyhow::Error {
    match classify(config, err) {
        Failure::Transient(err) | Failure::Fatal(err) => err,
    }
}

/// Whether another try could help. A server that is not up yet: yes. A
/// credential the server refuses or a certificate that does not verify:
/// never, however long the host waits.
fn classify(config: &NatsConfig, err: ConnectError) -> Failure {
    // rustls's errors arrive as I/O errors; they are about certificates and
    // settings, not about a server that is still starting.
    if let Some(tls) = tls_error(&err) {
        return Failure::Fatal(anyhow::anyhow!("TLS handshake failed ({tls}): {}", explain_tls(config, tls)));
    }
    match err.kind() {
        ConnectErrorKind::AuthorizationViolation => {
            Failure::Fatal(anyhow::anyhow!("authorization violation: the server refused {}", credential(config)))
        }
        ConnectErrorKind::Authentication => Failure::Fatal(match std::error::Error::source(&err) {
            // Reading the `.creds` file (see `client_options`).
            Some(source) => anyhow::anyhow!("{source}"),
            None => anyhow::anyhow!("cannot sign the server's challenge with {}: not a valid nkey seed", credential(config)),
        }),
        ConnectErrorKind::Io if let Some(refusal) = refused_login(&err) => {
            Failure::Fatal(anyhow::anyhow!("the server refused {}: {refusal}", credential(config)))
        }
        ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns | ConnectErrorKind::MaxReconnects => {
            Failure::Transient(err.into())
        }
        _ => Failure::Fatal(err.into()),
    }
}

/// The credential `[nats]` presents, named by its keys (never its value).
fn credential(config: &NatsConfig) -> &'static str {
    let client_cert = config.tls.as_ref().is_some_and(|tls| tls.cert.is_some());
    if config.token.is_some() {
        "the token of `nats.token`"
    } else if config.user.is_some() || config.password.is_some() {
        "`nats.user`/`nats.password`"
    } else if config.credentials.is_some() {
        "the user JWT of `nats.credentials`"
    } else if config.nkey.is_some() {
        "the nkey of `nats.nkey`"
    } else if client_cert {
        "the client certificate `nats.tls.cert` (no token, user, credentials or nkey is set in `[nats]`)"
    } else {
        "a connection without credentials (none of `nats.token`, `nats.user`/`nats.password`, `nats.credentials`, `nats.nkey` is set)"
    }
}

/// A rustls error anywhere in `err`'s chain (tokio-rustls wraps them in
/// `io::Error`, whose `source` skips the wrapped error itself).
fn tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// What to check after a failed TLS handshake.
fn explain_tls(config: &NatsConfig, err: &rustls::Error) -> String {
    let tls = config.tls.as_ref();
    let trusted = match tls.and_then(|t| t.ca.as_ref()) {
        Some(ca) => format!("the CA of `nats.tls.ca` ({})", ca.display()),
        None => "the system's CAs (`nats.tls.ca` is not set)".to_owned(),
    };
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the server's certificate is not signed by {trusted}; set `nats.tls.ca` to the CA that signed it")
        }
        rustls::Error::InvalidCertificate(_) => format!("the server's certificate does not verify against {trusted}"),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied,
        ) => match tls.and_then(|t| t.cert.as_ref()) {
            Some(cert) => format!("the server refused the client certificate of `nats.tls.cert` ({})", cert.display()),
            None => "the server requires a client certificate: set `nats.tls.cert` and `nats.tls.key`".to_owned(),
        },
        _ => "check `nats.url` and `[nats.tls]` against the server's TLS settings".to_owned(),
    }
}

/// The server's own refusal of a login other than "Authorization Violation"
/// ("User Authentication Expired", "... Revoked"): retrying cannot help.
fn refused_login(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(ServerError::Other(text)) = err.downcast_ref::<ServerError>() {
            let lower = text.to_lowercase();
            if (lower.contains("authentication") || lower.contains("authorization")) && !lower.contains("timeout") {
                return Some(text.clone());
            }
        }
        next = err.source();
    }
    None
}

async fn connect_once(config: &NatsConfig, urls: &[String], metrics: Arc<Metrics>) -> Result<async_nats::Client, async_nats::ConnectError> {
    let mut options = client_options(config).await?;
    options = options
        .subscription_capacity(config.subscription_capacity)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(config.max_reconnects);
    // The client reports its first connection as an event too: not a reconnect.
    let connected_before = Arc::new(std::sync::atomic::AtomicBool::new(false));
    options = options.event_callback(move |event| {
        let (metrics, connected_before) = (metrics.clone(), connected_before.clone());
        async move {
            match event {
                Event::Connected => {
                    if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        metrics.nats_reconnects.inc();
                    }
                    tracing::info!("nats: connected");
                }
                Event::Disconnected => tracing::warn!("nats: disconnected; reconnecting"),
                // A clean shutdown: not worth a warning.
                Event::Draining | Event::Closed => tracing::info!("nats: {event}"),
                Event::SlowConsumer(sid) => {
                    metrics.slow_consumers.inc();
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
                anyhow::anyhow!("reading the `nats.credentials` file `{}`: {e}", path.display()),
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::config::TlsConfig;

    fn message(failure: Failure) -> (bool, String) {
        match failure {
            Failure::Fatal(err) => (true, format!("{err:#}")),
            Failure::Transient(err) => (false, format!("{err:#}")),
        }
    }

    fn io_error(kind: io::ErrorKind, inner: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ConnectError {
        ConnectError::from(io::Error::new(kind, inner))
    }

    #[test]
    fn a_server_not_up_yet_is_retried() {
        let refused = ConnectError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!message(classify(&NatsConfig::default(), refused)).0);
        assert!(!message(classify(&NatsConfig::default(), ConnectError::new(ConnectErrorKind::TimedOut))).0);
    }

    #[test]
    fn a_refused_login_is_fatal_and_names_the_key_not_the_secret() {
        let config = NatsConfig { user: Some("ops".into()), password: Some("s3cret".into()), ..NatsConfig::default() };
        let refused = ConnectError::with_source(ConnectErrorKind::AuthorizationViolation, ServerError::AuthorizationViolation);
        let (fatal, text) = message(classify(&config, refused));
        assert!(fatal);
        assert_eq!(text, "authorization violation: the server refused `nats.user`/`nats.password`");

        let config = NatsConfig { credentials: Some("app.creds".into()), ..NatsConfig::default() };
        let expired = ConnectError::with_source(ConnectErrorKind::Io, ServerError::Other("User Authentication Expired".into()));
        let (fatal, text) = message(classify(&config, expired));
        assert!(fatal);
        assert_eq!(text, "the server refused the user JWT of `nats.credentials`: User Authentication Expired");
    }

    #[test]
    fn a_tls_failure_inside_an_io_error_is_fatal_and_says_what_to_check() {
        let tls = |ca: Option<&str>, cert: Option<&str>| NatsConfig {
            tls: Some(TlsConfig {
                ca: ca.map(PathBuf::from),
                cert: cert.map(PathBuf::from),
                key: cert.map(PathBuf::from),
                required: false,
            }),
            ..NatsConfig::default()
        };
        let untrusted = || io_error(io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        let (fatal, text) = message(classify(&NatsConfig::default(), untrusted()));
        assert!(fatal);
        assert!(text.starts_with("TLS handshake failed (invalid peer certificate: UnknownIssuer)"), "{text}");
        assert!(text.contains("`nats.tls.ca` is not set"), "{text}");
        let (_, text) = message(classify(&tls(Some("/etc/ca.pem"), None), untrusted()));
        assert!(text.contains("the CA of `nats.tls.ca` (/etc/ca.pem)"), "{text}");

        let required = || io_error(io::ErrorKind::InvalidData, rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
        let (fatal, text) = message(classify(&tls(Some("/etc/ca.pem"), None), required()));
        assert!(fatal);
        assert!(text.ends_with("the server requires a client certificate: set `nats.tls.cert` and `nats.tls.key`"), "{text}");
        let (_, text) = message(classify(&tls(None, Some("/etc/me.pem")), required()));
        assert!(text.ends_with("the server refused the client certificate of `nats.tls.cert` (/etc/me.pem)"), "{text}");
    }
}
