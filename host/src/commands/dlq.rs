//! `switchyard dlq list|show|replay`: the dead-letter stream for operators.

use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context as _;
use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::{HeaderMap, HeaderName, HeaderValue};

use super::{client, show};
use crate::cli::{ConnArgs, DlqAction, DlqFilter};
use crate::config::{self, DeadLetterConfig, subject};
use crate::policy::dead_letter::headers;

/// Header a replayed message carries: `<dead-letter stream>:<sequence>`.
pub const REPLAY_HEADER: &str = "Switchyard-Replay";

pub async fn run(conn: &ConnArgs, action: DlqAction) -> anyhow::Result<ExitCode> {
    let dead_letter = config::load(&conn.config).map(|l| l.config.dead_letter).unwrap_or_default();
    let client = client::connect(conn).await?;
    let js = jetstream::new(client.clone());
    match action {
        DlqAction::List(filter) => {
            let letters = read(&js, &dead_letter, &filter).await?;
            println!("{:>8}  {:<20}  {:<16}  {:<28}  {:>5}  reason", "seq", "time", "route", "subject", "tries");
            for msg in &letters {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(msg.time.unix_timestamp().max(0) as u64);
                let time = humantime::format_rfc3339_seconds(at).to_string();
                println!(
                    "{:>8}  {:<20}  {:<16}  {:<28}  {:>5}  {}",
                    msg.sequence,
                    time,
                    header(msg, headers::ROUTE),
                    header(msg, headers::SUBJECT),
                    header(msg, headers::DELIVERIES),
                    header(msg, headers::REASON)
                );
            }
            println!("{} dead letter(s)", letters.len());
        }
        DlqAction::Show { sequence } => {
            let filter = DlqFilter { route: None, subject: None, from: Some(sequence), to: Some(sequence) };
            let Some(msg) = read(&js, &dead_letter, &filter).await?.pop() else {
                anyhow::bail!("no dead letter at sequence {sequence} in `{}`", dead_letter.stream);
            };
            println!("sequence: {}\nsubject: {}", msg.sequence, msg.subject);
            for (name, values) in msg.headers.iter() {
                for value in values {
                    println!("{name}: {value}");
                }
            }
            println!("\n{}", show::payload(&msg.payload));
        }
        DlqAction::Replay(filter) => {
            let letters = read(&js, &dead_letter, &filter).await?;
            let stream = js.get_stream(&dead_letter.stream).await?;
            for msg in &letters {
                replay(&client, &js, &dead_letter.stream, msg).await?;
                stream
                    .delete_message(msg.sequence)
                    .await
                    .with_context(|| format!("removing replayed dead letter {}", msg.sequence))?;
            }
            println!("replayed {} dead letter(s)", letters.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The dead letters that match `filter`, oldest first.
async fn read(js: &jetstream::Context, dlq: &DeadLetterConfig, filter: &DlqFilter) -> anyhow::Result<Vec<StreamMessage>> {
    let mut stream = js.get_stream(&dlq.stream).await.with_context(|| format!("dead-letter stream `{}`", dlq.stream))?;
    let state = stream.info().await?.state.clone();
    let first = filter.from.unwrap_or(state.first_sequence).max(state.first_sequence);
    let last = filter.to.unwrap_or(state.last_sequence).min(state.last_sequence);
    let mut out = Vec::new();
    for sequence in first..=last {
        // Replayed (deleted) sequences leave gaps.
        let Ok(msg) = stream.get_raw_message(sequence).await else { continue };
        let route_ok = filter.route.as_deref().is_none_or(|r| header(&msg, headers::ROUTE) == r);
        let subject_ok = filter.subject.as_deref().is_none_or(|p| subject::matches(p, header(&msg, headers::SUBJECT)));
        if route_ok && subject_ok {
            out.push(msg);
        }
    }
    Ok(out)
}

/// Publish a dead letter back to its original subject: its own headers without
/// the dead-letter ones, plus where it was replayed from.
async fn replay(client: &async_nats::Client, js: &jetstream::Context, stream: &str, msg: &StreamMessage) -> anyhow::Result<()> {
    let original = header(msg, headers::SUBJECT).to_owned();
    anyhow::ensure!(!original.is_empty(), "dead letter {} has no {} header", msg.sequence, headers::SUBJECT);
    let mut map = HeaderMap::new();
    for (name, values) in msg.headers.iter() {
        let text = name.to_string();
        if text.starts_with("Switchyard-") || text.eq_ignore_ascii_case("Nats-Msg-Id") {
            continue;
        }
        for value in values {
            map.append(name.clone(), value.clone());
        }
    }
    let from = format!("{stream}:{}", msg.sequence);
    if let (Ok(name), Ok(value)) = (HeaderName::from_str(REPLAY_HEADER), HeaderValue::from_str(&from)) {
        map.insert(name, value);
    }
    match js.publish_with_headers(original.clone(), map.clone(), msg.payload.clone()).await {
        // Captured by a stream: wait for its ack before the letter is removed.
        Ok(ack) => match ack.await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                client.publish_with_headers(original, map, msg.payload.clone()).await?;
                client.flush().await?;
                Ok(())
            }
            Err(err) => Err(anyhow::anyhow!("replaying {} to `{original}`: {err}", msg.sequence)),
        },
        Err(err) => Err(anyhow::anyhow!("replaying {} to `{original}`: {err}", msg.sequence)),
    }
}

fn header<'a>(msg: &'a StreamMessage, name: &str) -> &'a str {
    msg.headers.get(name).map(|v| v.as_str()).unwrap_or_default()
}
