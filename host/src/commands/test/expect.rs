//! Comparing what a handling gave with what a case expects: each difference
//! becomes a line saying what was expected and what came out.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;
use switchyard_abi::{Header, Outcome, Publish};

use switchyard_abi::kv::MemoryBucket;

use super::cases::{Expect, KvValue, OutcomeKind, PublishCheck, ReplyCheck};
use super::run::Handling;
use crate::commands::show;
use crate::plugin::printable;

/// The differences between `got` and `want`; empty when it passes.
pub(super) fn compare(want: &Expect, got: &Handling) -> Vec<String> {
    let mut diffs = Vec::new();
    let kind = got.kind();
    if *want.outcome.get_ref() != kind {
        diffs.push(format!("outcome: expected {}, got {}", name(*want.outcome.get_ref()), got.describe()));
        return diffs;
    }
    if let Some(pattern) = &want.reason {
        let reason = got.reason().unwrap_or_default();
        if !matches(pattern, &reason) {
            diffs.push(format!("reason: expected to match /{pattern}/, got {reason:?}"));
        }
    }
    if let (Some(want), Some(Outcome::Reply { payload, headers })) = (&want.reply, &got.outcome) {
        reply(want, payload, headers, &mut diffs);
    }
    if let Some(want) = &want.publishes {
        publishes(want, &got.publishes, &mut diffs);
    }
    for pattern in &want.logs {
        if !got.logs.iter().any(|line| matches(pattern, line)) {
            let logs = if got.logs.is_empty() { "none".to_owned() } else { got.logs.join(" | ") };
            diffs.push(format!("logs: expected a line matching /{pattern}/, got {logs}"));
        }
    }
    diffs
}

/// The buckets after the case against `want` (bucket → key → value).
pub(super) fn buckets(want: &BTreeMap<String, BTreeMap<String, KvValue>>, got: &BTreeMap<String, MemoryBucket>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (name, entries) in want {
        let Some(bucket) = got.get(name) else {
            diffs.push(format!("kv: no bucket `{name}` in the runtime.toml"));
            continue;
        };
        for (key, value) in entries {
            let what = format!("kv {name}/{key}");
            let Ok(entry) = bucket.get(key) else {
                diffs.push(format!("{what}: expected a value, none"));
                continue;
            };
            match value {
                KvValue::Text(text) => check_payload(&what, (&Some(text.clone()), &None, &None), &entry.value, &mut diffs),
                KvValue::Json(json) => check_payload(&what, (&None, &Some(json.clone()), &None), &entry.value, &mut diffs),
            }
        }
    }
    diffs
}

pub(super) fn name(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Ack => "ack",
        OutcomeKind::Reply => "reply",
        OutcomeKind::Retry => "retry",
        OutcomeKind::Reject => "reject",
        OutcomeKind::Error => "error",
    }
}

fn reply(want: &ReplyCheck, payload: &[u8], headers: &[Header], diffs: &mut Vec<String>) {
    check_headers("reply", &want.headers, headers, diffs);
    check_payload("reply", (&want.payload, &want.json, &want.matches), payload, diffs);
}

fn publishes(want: &[PublishCheck], got: &[Publish], diffs: &mut Vec<String>) {
    if want.len() != got.len() {
        let subjects: Vec<&str> = got.iter().map(|p| p.subject.as_str()).collect();
        diffs.push(format!("publishes: expected {}, got {} {subjects:?}", want.len(), got.len()));
    }
    for (i, (want, got)) in want.iter().zip(got).enumerate() {
        let what = format!("publish {}", i + 1);
        if want.subject != got.subject {
            diffs.push(format!("{what}: expected subject `{}`, got `{}`", want.subject, got.subject));
        }
        check_headers(&what, &want.headers, &got.headers, diffs);
        check_payload(&what, (&want.payload, &want.json, &want.matches), &got.payload, diffs);
    }
}

fn check_headers(what: &str, want: &BTreeMap<String, String>, got: &[Header], diffs: &mut Vec<String>) {
    for (key, value) in want {
        match got.iter().find(|(k, _)| k == key) {
            Some((_, v)) if v == value => {}
            Some((_, v)) => diffs.push(format!("{what}: header `{key}`: expected {value:?}, got {v:?}")),
            None => diffs.push(format!("{what}: header `{key}`: expected {value:?}, got none ({})", show::headers(got))),
        }
    }
}

type PayloadWant<'a> = (&'a Option<String>, &'a Option<toml::Value>, &'a Option<String>);

fn check_payload(what: &str, (exact, json, pattern): PayloadWant<'_>, got: &[u8], diffs: &mut Vec<String>) {
    let text = show::payload(got);
    if let Some(exact) = exact
        && exact.as_bytes() != got
    {
        diffs.push(format!("{what}: payload: expected {exact:?}, got {:?}", printable(&text)));
    }
    if let Some(pattern) = pattern
        && !matches(pattern, &text)
    {
        diffs.push(format!("{what}: payload: expected to match /{pattern}/, got {:?}", printable(&text)));
    }
    if let Some(json) = json {
        let want = serde_json::to_value(json).unwrap_or(Value::Null);
        match serde_json::from_slice::<Value>(got) {
            Ok(got) => {
                if let Some(at) = differs(&want, &got, "$") {
                    diffs.push(format!("{what}: payload {at}"));
                }
            }
            Err(err) => diffs.push(format!("{what}: payload: expected JSON containing {want}, got {:?} ({err})", printable(&text))),
        }
    }
}

/// Where `got` does not contain `want`: objects may have more keys, arrays
/// and scalars must be equal (arrays element by element, each containing
/// the expected one).
fn differs(want: &Value, got: &Value, at: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => want.iter().find_map(|(key, want)| match got.get(key) {
            Some(got) => differs(want, got, &format!("{at}.{key}")),
            None => Some(format!("{at}.{key}: expected {want}, missing")),
        }),
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            w.iter().zip(g).enumerate().find_map(|(i, (want, got))| differs(want, got, &format!("{at}[{i}]")))
        }
        // 12 and 12.0 are the same number to a reader of JSON.
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => None,
        _ if want == got => None,
        _ => Some(format!("{at}: expected {want}, got {got}")),
    }
}

/// Whether `text` matches `pattern` (a pattern that is not a regex was
/// refused when the case file was checked).
fn matches(pattern: &str, text: &str) -> bool {
    Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}

/// The regexes of a case that do not compile, with why.
pub(super) fn bad_patterns(want: &Expect) -> Vec<String> {
    let mut patterns: Vec<&String> = want.reason.iter().chain(&want.logs).collect();
    patterns.extend(want.reply.iter().filter_map(|r| r.matches.as_ref()));
    patterns.extend(want.publishes.iter().flatten().filter_map(|p| p.matches.as_ref()));
    let why = |err: regex::Error| err.to_string().lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned();
    patterns.into_iter().filter_map(|p| Regex::new(p).err().map(|err| format!("`{p}` is not a regex: {}", why(err)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_compared_as_a_subset_and_says_where_it_differs() {
        let got = json!({"id": 7, "total": 12.0, "items": [{"sku": "a", "n": 1}], "extra": true});
        assert_eq!(differs(&json!({"id": 7, "total": 12}), &got, "$"), None);
        assert_eq!(differs(&json!({"items": [{"sku": "a"}]}), &got, "$"), None);
        assert_eq!(differs(&json!({"items": [{"sku": "b"}]}), &got, "$").as_deref(), Some("$.items[0].sku: expected \"b\", got \"a\""));
        assert_eq!(differs(&json!({"currency": "EUR"}), &got, "$").as_deref(), Some("$.currency: expected \"EUR\", missing"));
        assert!(differs(&json!({"items": []}), &got, "$").is_some(), "arrays must have the same length");
    }
}
