//! `switchyard dlq list|show|replay`: the dead-letter stream for operators.
//!
//! A replay sends each dead letter back the way it first came and removes it
//! only once that delivery is confirmed; every other letter is kept:
//! - from a JetStream stream (`Switchyard-Stream`): a JetStream publish,
//!   confirmed by a stream's ack;
//! - a core request (`Switchyard-Request: true`): a request, confirmed by a reply;
//! - a core publish (or a letter older than that header): a request as well, so
//!   the server's no-responders status tells that nobody listens; a reply, or
//!   silence until the timeout (a subscriber that does not answer), confirms it.
//!
//! An error reply means "not handled" (shed, breaker open) and keeps the letter,
//! except code 500: the route failed the message again and stored a new dead
//! letter, so the old one may go.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishErrorKind, message::StreamMessage};
use async_nats::{HeaderMap, HeaderName, HeaderValue, RequestErrorKind};
use futures::StreamExt;

use super::{client, show};
use crate::cli::{ConnArgs, DlqAction, DlqFilter, DlqReplay};
use crate::config::{self, DeadLetterConfig, subject};
use crate::policy::dead_letter::headers;

/// Header a replayed message carries: `<dead-letter stream>:<sequence>`.
pub(crate) const REPLAY_HEADER: &str = "Switchyard-Replay";

/// Replays in flight at once, so letters that wait out the timeout (silent
/// subscribers) overlap instead of adding up.
const IN_FLIGHT: usize = 32;

/// The error codes a core route answers with after it dead-lettered the
/// message: the plugin rejected it (400), or could not handle it (500).
const DEAD_LETTERED_AGAIN: [&str; 2] = ["400", "500"];

pub(crate) async fn run(conn: &ConnArgs, action: DlqAction) -> anyhow::Result<ExitCode> {
    let dead_letter = config::load(&conn.config).map(|l| l.config.dead_letter).unwrap_or_default();
    let client = client::connect(conn).await?;
    let js = jetstream::new(client.clone());
    match action {
        DlqAction::List(filter) => list(&js, &dead_letter, &filter).await,
        DlqAction::Show { sequence } => show_one(&js, &dead_letter, sequence).await,
        DlqAction::Replay(args) => replay_all(&client, &js, &dead_letter, &args).await,
    }
}

async fn list(js: &jetstream::Context, dlq: &DeadLetterConfig, filter: &DlqFilter) -> anyhow::Result<ExitCode> {
    let letters = read(js, dlq, filter).await?;
    println!("{:>8}  {:<20}  {:<16}  {:<28}  {:>5}  reason", "seq", "time", "route", "subject", "tries");
    for msg in &letters {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(msg.time.unix_timestamp().max(0) as u64);
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
    Ok(ExitCode::SUCCESS)
}

async fn show_one(js: &jetstream::Context, dlq: &DeadLetterConfig, sequence: u64) -> anyhow::Result<ExitCode> {
    let filter = DlqFilter { route: None, subject: None, from: Some(sequence), to: Some(sequence) };
    let Some(msg) = read(js, dlq, &filter).await?.pop() else {
        anyhow::bail!("no dead letter at sequence {sequence} in `{}`", dlq.stream);
    };
    println!("sequence: {}\nsubject: {}", msg.sequence, msg.subject);
    // By name: a header map has no order of its own, and the same letter should print the same.
    let mut headers: Vec<(String, String)> =
        msg.headers.iter().flat_map(|(name, values)| values.iter().map(move |value| (name.to_string(), value.to_string()))).collect();
    headers.sort();
    for (name, value) in headers {
        println!("{name}: {value}");
    }
    println!("\n{}", show::payload(&msg.payload));
    Ok(ExitCode::SUCCESS)
}

/// Replay every matching dead letter, a bounded number at a time, printing one
/// line each in sequence order and a summary; non-zero when any was kept.
async fn replay_all(
    client: &async_nats::Client,
    js: &jetstream::Context,
    dlq: &DeadLetterConfig,
    args: &DlqReplay,
) -> anyhow::Result<ExitCode> {
    // A zero wait would take a letter nobody listens to for delivered before
    // the server's no-responders status could say otherwise.
    anyhow::ensure!(!args.timeout.is_zero(), "--timeout must be more than 0s");
    let letters = read(js, dlq, &args.filter).await?;
    let stream = js.get_stream(&dlq.stream).await.with_context(|| format!("dead-letter stream `{}`", dlq.stream))?;
    let replayer = Replayer {
        client,
        // The publish ack wait follows --timeout instead of the 5s default.
        js: jetstream::ContextBuilder::new().timeout(args.timeout).build(client.clone()),
        stream,
        dlq: &dlq.stream,
        timeout: args.timeout,
        dry_run: args.dry_run,
    };
    // `buffered` runs up to IN_FLIGHT at once and yields in input order.
    let replayer = &replayer;
    let mut fates = futures::stream::iter(&letters).map(|msg| async move { (msg, replayer.one(msg).await) }).buffered(IN_FLIGHT);
    let mut tally = Tally::default();
    while let Some((msg, fate)) = fates.next().await {
        println!("{}", line(msg, &fate));
        tally.add(&fate);
    }
    Ok(tally.summary(letters.len(), args.dry_run))
}

/// How a dead letter first arrived, so a replay sends it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// From this stream: a JetStream publish, confirmed by a stream's ack.
    Stream(String),
    /// A core request: a request, confirmed by a reply.
    Request,
    /// A core publish: delivered when anyone listens.
    Publish,
}

impl Origin {
    fn of(map: &HeaderMap) -> Origin {
        let stream = value(map, headers::STREAM);
        if !stream.is_empty() {
            Origin::Stream(stream.to_owned())
        } else if value(map, headers::REQUEST).eq_ignore_ascii_case("true") {
            Origin::Request
        } else {
            Origin::Publish
        }
    }

    /// What a replay would do, for `--dry-run`.
    fn plan(&self, subject: &str) -> String {
        match self {
            Origin::Stream(stream) => {
                format!("would publish to `{subject}` on jetstream (it came from stream {stream}) and wait for the stream ack")
            }
            Origin::Request => format!("would send a request to `{subject}` and wait for a reply"),
            Origin::Publish => format!("would send to `{subject}` when anyone listens there"),
        }
    }
}

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Delivery confirmed and the letter removed: how it was delivered.
    Replayed(String),
    /// Delivery not confirmed, the letter stays: why.
    Kept(String),
    /// `--dry-run`: what would be done.
    Planned(String),
}

/// One line per dead letter: sequence, original subject, what happened.
fn line(msg: &StreamMessage, fate: &Fate) -> String {
    let subject = match header(msg, headers::SUBJECT) {
        "" => "-",
        subject => subject,
    };
    let what = match fate {
        Fate::Replayed(how) => format!("replayed: {how}"),
        Fate::Kept(why) => format!("kept: {why}"),
        Fate::Planned(plan) => plan.clone(),
    };
    format!("{:>8}  {subject}  {what}", msg.sequence)
}

#[derive(Debug, Default)]
struct Tally {
    replayed: usize,
    kept: usize,
    planned: usize,
}

impl Tally {
    fn add(&mut self, fate: &Fate) {
        match fate {
            Fate::Replayed(_) => self.replayed += 1,
            Fate::Kept(_) => self.kept += 1,
            Fate::Planned(_) => self.planned += 1,
        }
    }

    /// Print the summary; a kept letter is a failed replay, while a dry run,
    /// which sends nothing, cannot fail.
    fn summary(&self, total: usize, dry_run: bool) -> ExitCode {
        if dry_run {
            println!("dry run: would replay {} of {total} dead letter(s); nothing changed", self.planned);
            return ExitCode::SUCCESS;
        }
        println!("replayed {} of {total} dead letter(s); {} kept", self.replayed, self.kept);
        if self.kept > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    }
}

/// Sends dead letters back and removes the delivered ones.
struct Replayer<'a> {
    client: &'a async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    dlq: &'a str,
    timeout: Duration,
    dry_run: bool,
}

impl Replayer<'_> {
    async fn one(&self, msg: &StreamMessage) -> Fate {
        let subject = header(msg, headers::SUBJECT);
        if subject.is_empty() {
            return Fate::Kept(format!("no {} header", headers::SUBJECT));
        }
        let origin = Origin::of(&msg.headers);
        if self.dry_run {
            return Fate::Planned(origin.plan(subject));
        }
        let map = replay_headers(&msg.headers, &format!("{}:{}", self.dlq, msg.sequence));
        let fate = match origin {
            Origin::Stream(_) => self.to_stream(subject, map, msg).await,
            Origin::Request | Origin::Publish => self.to_core(&origin, subject, map, msg).await,
        };
        match fate {
            Fate::Replayed(how) => self.remove(msg.sequence, how).await,
            other => other,
        }
    }

    /// A JetStream publish, delivered once a stream has acknowledged it.
    async fn to_stream(&self, subject: &str, map: HeaderMap, msg: &StreamMessage) -> Fate {
        let acked = match self.js.publish_with_headers(subject.to_owned(), map, msg.payload.clone()).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        match acked {
            Ok(ack) => Fate::Replayed(format!("stored by stream {} at sequence {}", ack.stream, ack.sequence)),
            Err(err) if err.kind() == PublishErrorKind::StreamNotFound => Fate::Kept(format!("no stream captures `{subject}` any more")),
            Err(err) => Fate::Kept(format!("no stream ack: {err}")),
        }
    }

    /// A request, also for a core publish: only a request learns from the
    /// server that nobody listens, where a publish would vanish unnoticed.
    async fn to_core(&self, origin: &Origin, subject: &str, map: HeaderMap, msg: &StreamMessage) -> Fate {
        let request = async_nats::Request::new().headers(map).payload(msg.payload.clone()).timeout(Some(self.timeout));
        match self.client.send_request(subject.to_owned(), request).await {
            Ok(reply) => answered(&reply),
            Err(err) => match err.kind() {
                RequestErrorKind::NoResponders => Fate::Kept(format!("nobody listens on `{subject}` (no responders)")),
                // A publish needs no answer: someone took it, or the server
                // would have said there are no responders.
                RequestErrorKind::TimedOut if *origin == Origin::Publish => Fate::Replayed("delivered (a subscriber, no reply)".to_owned()),
                RequestErrorKind::TimedOut => Fate::Kept(format!("no reply within {}", humantime::format_duration(self.timeout))),
                _ => Fate::Kept(format!("request failed: {err}")),
            },
        }
    }

    /// Delete a delivered letter; failing that, it counts as kept, because a
    /// later replay would deliver it again.
    async fn remove(&self, sequence: u64, how: String) -> Fate {
        match self.stream.delete_message(sequence).await {
            Ok(_) => Fate::Replayed(how),
            Err(err) => Fate::Kept(format!("{how}, but removing the dead letter failed: {err}")),
        }
    }
}

/// A reply confirms delivery, unless it is an error reply other than the one
/// that says the route dead-lettered the message again.
fn answered(reply: &async_nats::Message) -> Fate {
    let value = |name: &str| reply.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
    let Some(reason) = value("Nats-Service-Error") else {
        return Fate::Replayed("delivered (a responder answered)".to_owned());
    };
    let code = value("Nats-Service-Error-Code").unwrap_or_default();
    if DEAD_LETTERED_AGAIN.contains(&code.as_str()) {
        Fate::Replayed(format!("delivered, error reply {code} `{reason}`: the route dead-lettered it again"))
    } else {
        Fate::Kept(format!("error reply {code} `{reason}`: not handled"))
    }
}

/// The dead letter's own headers without the dead-letter ones (and without a
/// message id the stream would take for a duplicate), plus `from`: where it
/// was replayed from.
fn replay_headers(letter: &HeaderMap, from: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, values) in letter.iter() {
        let text = name.to_string();
        if text.starts_with("Switchyard-") || text.eq_ignore_ascii_case("Nats-Msg-Id") {
            continue;
        }
        for value in values {
            map.append(name.clone(), value.clone());
        }
    }
    if let (Ok(name), Ok(value)) = (HeaderName::from_str(REPLAY_HEADER), HeaderValue::from_str(from)) {
        map.insert(name, value);
    }
    map
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
        let Ok(msg) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let route_ok = filter.route.as_deref().is_none_or(|r| header(&msg, headers::ROUTE) == r);
        let subject_ok = filter.subject.as_deref().is_none_or(|p| subject::matches(p, header(&msg, headers::SUBJECT)));
        if route_ok && subject_ok {
            out.push(msg);
        }
    }
    Ok(out)
}

fn header<'a>(msg: &'a StreamMessage, name: &str) -> &'a str {
    value(&msg.headers, name)
}

fn value<'a>(map: &'a HeaderMap, name: &str) -> &'a str {
    map.get(name).map(|v| v.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, *value);
        }
        map
    }

    fn reply(pairs: &[(&str, &str)]) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            payload: Default::default(),
            headers: (!pairs.is_empty()).then(|| map(pairs)),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn the_origin_comes_from_the_headers_and_old_letters_are_publishes() {
        assert_eq!(Origin::of(&map(&[(headers::STREAM, "JOBS")])), Origin::Stream("JOBS".into()));
        assert_eq!(Origin::of(&map(&[(headers::REQUEST, "true")])), Origin::Request);
        assert_eq!(Origin::of(&map(&[(headers::SUBJECT, "a.b")])), Origin::Publish);
    }

    #[test]
    fn only_an_error_reply_other_than_400_or_500_keeps_the_letter() {
        assert_eq!(answered(&reply(&[])), Fate::Replayed("delivered (a responder answered)".into()));
        for code in ["400", "500"] {
            let again = answered(&reply(&[("Nats-Service-Error", "boom"), ("Nats-Service-Error-Code", code)]));
            assert!(matches!(&again, Fate::Replayed(how) if how.contains("dead-lettered it again")), "{again:?}");
        }
        for code in ["429", "503"] {
            let shed = answered(&reply(&[("Nats-Service-Error", "busy"), ("Nats-Service-Error-Code", code)]));
            assert_eq!(shed, Fate::Kept(format!("error reply {code} `busy`: not handled")));
        }
    }

    #[test]
    fn replayed_headers_drop_the_dead_letter_ones_and_say_where_from() {
        let letter = map(&[
            ("trace-id", "t1"),
            (headers::REASON, "bad"),
            (headers::REQUEST, "true"),
            ("Nats-Msg-Id", "dlq:JOBS:3"),
            (REPLAY_HEADER, "SWITCHYARD_DLQ:1"),
        ]);
        let out = replay_headers(&letter, "SWITCHYARD_DLQ:7");
        let names: Vec<String> = out.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(value(&out, "trace-id"), "t1");
        assert_eq!(value(&out, REPLAY_HEADER), "SWITCHYARD_DLQ:7");
    }
}
