//! `switchyard pub|req|sub`: a small NATS client so the README's tour needs no
//! other tool. It finds the server the way `run` does.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;

use super::show;
use crate::cli::{ConnArgs, MessageArgs};
use crate::config;
use crate::route::convert_headers;

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

pub(super) async fn connect(conn: &ConnArgs) -> anyhow::Result<async_nats::Client> {
    let url = url(conn);
    let servers = config::ServerList::parse(&url).0;
    async_nats::ConnectOptions::new()
        .name("switchyard-cli")
        .connect(servers)
        .await
        .with_context(|| format!("connecting to NATS at {url} (is `switchyard run` up?)"))
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
