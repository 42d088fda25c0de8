//! `switchyard pub|req|sub`: a small NATS client so the README's tour needs no
//! other tool. It finds the server the way `run` does.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;

use super::show;
use crate::cli::{ConnArgs, MessageArgs};
use crate::route::convert_headers;
use crate::{broker, config};

/// `--url`, else runtime.toml's `nats.url`, else its embedded server's address.
pub(super) fn url(conn: &ConnArgs) -> String {
    if let Some(url) = &conn.url {
        return url.clone();
    }
    match config::load(&conn.config) {
        Ok(loaded) => match loaded.config.nats.url {
            Some(urls) => urls.to_string(),
            None => format!("nats://127.0.0.1:{}", loaded.config.nats.embedded.port),
        },
        Err(_) => "nats://127.0.0.1:4222".into(),
    }
}

/// A flag given on the command line wins over the file's value.
fn set<T: Clone>(field: &mut Option<T>, flag: &Option<T>) {
    if flag.is_some() {
        field.clone_from(flag);
    }
}

/// Connect the way `run` does: runtime.toml's `[nats]` authentication and TLS
/// (when the file loads), with the command line's flags over them.
pub(super) async fn connect(conn: &ConnArgs) -> anyhow::Result<async_nats::Client> {
    let url = url(conn);
    let servers = config::ServerList::parse(&url).0;
    let mut nats = config::load(&conn.config).map(|loaded| loaded.config.nats).unwrap_or_default();
    nats.name = "switchyard-cli".into();
    if conn.creds.is_some() || conn.user.is_some() || conn.token.is_some() || conn.nkey.is_some() {
        // One method, the one asked for: the file's would be refused beside it.
        (nats.credentials, nats.user, nats.password, nats.token, nats.nkey) = Default::default();
    }
    // async-nats ignores `user:password@` in a URL; the `nats` CLI uses it.
    let from_url = servers
        .iter()
        .filter_map(|s| s.parse::<async_nats::ServerAddr>().ok())
        .find_map(|addr| Some((addr.username()?.to_owned(), addr.password()?.to_owned())));
    if let Some((user, password)) = from_url.filter(|_| conn.user.is_none()) {
        (nats.credentials, nats.token, nats.nkey) = Default::default();
        (nats.user, nats.password) = (Some(user), Some(password));
    }
    set(&mut nats.credentials, &conn.creds);
    set(&mut nats.user, &conn.user);
    set(&mut nats.password, &conn.password);
    set(&mut nats.token, &conn.token);
    set(&mut nats.nkey, &conn.nkey);
    if conn.tlsca.is_some() || conn.tlscert.is_some() {
        let tls = nats.tls.get_or_insert(config::TlsConfig { ca: None, cert: None, key: None, required: true });
        set(&mut tls.ca, &conn.tlsca);
        set(&mut tls.cert, &conn.tlscert);
        set(&mut tls.key, &conn.tlskey);
    }
    let mut options = broker::client_options(&nats).await?;
    if let Some(prefix) = &conn.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    let connected = options.connect(servers).await.map_err(|err| broker::describe_failure(&nats, err));
    // Say where the address came from: a quiet default is the usual surprise.
    let from = match (&conn.url, conn.config.is_file()) {
        (Some(_), _) => "--url".to_owned(),
        (None, true) => format!("the [nats] of `{}`", conn.config.display()),
        (None, false) => format!("the default: no --url, and no `{}` here", conn.config.display()),
    };
    connected.with_context(|| format!("connecting to NATS at {url} ({from}; is `switchyard run` up?)"))
}

pub(crate) async fn publish(conn: &ConnArgs, subject: String, data: String, msg: &MessageArgs, count: u64) -> anyhow::Result<ExitCode> {
    let client = connect(conn).await?;
    let headers = convert_headers(&msg.headers).map_err(anyhow::Error::msg)?;
    for _ in 0..count {
        client.publish_with_headers(subject.clone(), headers.clone(), data.clone().into()).await?;
    }
    // flush() only writes the socket; that is enough for the server to have them.
    client.flush().await?;
    println!("published {count} message(s) to {subject}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn request(
    conn: &ConnArgs,
    subject: String,
    data: String,
    msg: &MessageArgs,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let client = connect(conn).await?;
    let headers = convert_headers(&msg.headers).map_err(anyhow::Error::msg)?;
    let reply = tokio::time::timeout(timeout, client.request_with_headers(subject.clone(), headers, data.into()))
        .await
        .map_err(|_| anyhow::anyhow!("no reply on `{subject}` within {timeout:?}"))?
        .with_context(|| format!("request to `{subject}`"))?;
    println!("{}", show::payload(&reply.payload));
    if let Some(headers) = &reply.headers {
        print_headers(headers);
    }
    // An error reply (the NATS services convention) is a failed request.
    let failed = reply.headers.as_ref().is_some_and(|h| h.get("Nats-Service-Error").is_some());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn print_headers(headers: &async_nats::HeaderMap) {
    for (name, values) in headers.iter() {
        for value in values {
            println!("  {name}: {value}");
        }
    }
}

pub(crate) async fn subscribe(conn: &ConnArgs, subject: String, count: Option<u64>) -> anyhow::Result<ExitCode> {
    let client = connect(conn).await?;
    let mut sub = client.subscribe(subject.clone()).await?;
    client.flush().await?;
    eprintln!("listening on {subject}");
    let mut seen = 0u64;
    while let Some(msg) = sub.next().await {
        println!("[{}] {}", msg.subject, show::payload(&msg.payload));
        if let Some(headers) = &msg.headers {
            print_headers(headers);
        }
        seen += 1;
        if count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
