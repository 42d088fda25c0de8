//! The `*.test.toml` files of `switchyard test`: cases, each an input message
//! for a route (or a plugin) and what must come out of it.
//!
//! ```toml
//! [[case]]
//! name = "a valid order is stored"
//! route = "orders"
//! input = { subject = "orders.created", json = { id = 7, total = 12.5 } }
//! expect = { outcome = "ack", publishes = [{ subject = "orders.stored", json = { id = 7 } }] }
//! ```
//!
//! Key-value buckets (`[[buckets]]`) are in memory, empty at the start of each
//! case but for what its `kv` puts there; `expect.kv` checks them at its end.
//! Requests are answered by the case's `responders`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problem, Source};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CaseFile {
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Case {
    pub name: String,
    /// The route whose plugin, settings and subjects the input goes through.
    pub route: Option<Spanned<String>>,
    /// Or a plugin on its own (`[plugins.NAME]`), with no route around it.
    pub plugin: Option<Spanned<String>>,
    pub input: Input,
    /// Feed each publish to the routes whose subjects (or stream's subjects)
    /// match it, and those routes' publishes on, so one case is a whole flow.
    #[serde(default)]
    pub follow: bool,
    pub expect: Expect,
    /// With `follow`: what each following handling must give, in order.
    #[serde(default)]
    pub then: Vec<Expect>,
    /// Bucket → key → value in the key-value buckets before the case runs.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, KvValue>>,
    /// Subject → the reply a request to it gets (text, or JSON); a request
    /// to another subject finds no responders.
    #[serde(default)]
    pub responders: BTreeMap<String, KvValue>,
}

/// A value in a bucket or a reply: text as it is, anything else as JSON (in
/// `expect.kv`, JSON containing it: objects may have more keys).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum KvValue {
    Text(String),
    Json(toml::Value),
}

/// The message a case sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Input {
    pub subject: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The payload: text, JSON (written as a TOML value), or a file's bytes.
    pub payload: Option<String>,
    pub json: Option<toml::Value>,
    pub payload_file: Option<PathBuf>,
    /// A reply subject: the message is a request.
    pub reply: Option<String>,
    #[serde(default = "first_attempt")]
    pub attempt: u64,
    /// JetStream delivery facts; a JetStream route's message gets them anyway.
    pub stream_sequence: Option<u64>,
}

fn first_attempt() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Expect {
    /// With `then`: the route that handles this step.
    pub route: Option<Spanned<String>>,
    pub outcome: Spanned<OutcomeKind>,
    /// A regex the reason of a retry, reject or error must match.
    pub reason: Option<String>,
    pub reply: Option<ReplyCheck>,
    /// Exactly these publishes, in order (when given).
    pub publishes: Option<Vec<PublishCheck>>,
    /// Regexes each of which some log line of the plugin must match.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Bucket → key → value the key-value buckets must hold once the case ran.
    #[serde(default)]
    pub kv: BTreeMap<String, BTreeMap<String, KvValue>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum OutcomeKind {
    Ack,
    Reply,
    Retry,
    Reject,
    /// The call failed: a trap, the timeout, the memory limit.
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplyCheck {
    /// Headers the reply must carry (others are allowed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What the payload must be: exactly `payload`, or JSON containing
    /// `json` (objects may have more keys), or text matching the regex `matches`.
    pub payload: Option<String>,
    pub json: Option<toml::Value>,
    pub matches: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishCheck {
    pub subject: String,
    /// Headers it must carry (others are allowed).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// As in [`ReplyCheck`].
    pub payload: Option<String>,
    pub json: Option<toml::Value>,
    pub matches: Option<String>,
}

/// A case file read and parsed, with its text for placing problems.
pub(super) struct Loaded {
    pub path: PathBuf,
    pub source: Source,
    pub cases: Vec<Case>,
}

pub(super) fn load(path: &Path) -> Result<Loaded, Problem> {
    let text = std::fs::read_to_string(path).map_err(|err| Problem { file: path.to_owned(), position: None, message: err.to_string() })?;
    let source = Source::new(path, text.as_str());
    match toml::from_str::<CaseFile>(&text) {
        Ok(file) => Ok(Loaded { path: path.to_owned(), source, cases: file.cases }),
        Err(err) => {
            let message = err.message().trim().replace('\n', " ");
            Err(match err.span() {
                Some(span) => source.problem(span, message),
                None => Problem { file: path.to_owned(), position: None, message },
            })
        }
    }
}

/// The `*.test.toml` files in `dir`, by name.
pub(super) fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".test.toml")))
        .collect();
    files.sort();
    Ok(files)
}

impl KvValue {
    /// The bytes it stands for.
    pub(super) fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            KvValue::Text(text) => text.clone().into_bytes(),
            KvValue::Json(value) => serde_json::to_vec(value)?,
        })
    }
}
