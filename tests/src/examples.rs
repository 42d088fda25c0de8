//! The runnable examples (`examples/<name>/`) under test: where they lie, their sample messages,
//! `switchyard check` on their runtime.toml, starting them on a test server, and small readers
//! for what they publish.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use futures::StreamExt;

use crate::{Host, NatsServer, within};

/// `examples/<name>`.
pub fn dir(name: &str) -> PathBuf {
    crate::workspace().join("examples").join(name)
}

/// A sample message of the example, `examples/<name>/messages/<file>` (the README publishes the
/// same files, so the tests keep them honest).
pub fn sample(name: &str, file: &str) -> String {
    let path = dir(name).join("messages").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sample message as JSON, to change a field before publishing it.
pub fn sample_json(name: &str, file: &str) -> serde_json::Value {
    serde_json::from_str(&sample(name, file)).unwrap_or_else(|e| panic!("{name}/messages/{file}: {e}"))
}

/// Run `switchyard check` on `examples/<name>/<file>` from the workspace root, as the README
/// does; panic with its output unless it passes. Returns stdout.
pub fn check(name: &str, file: &str) -> String {
    let path = format!("examples/{name}/{file}");
    let output =
        Command::new(crate::host::binary()).args(["check", &path]).current_dir(crate::workspace()).output().expect("run switchyard check");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "`switchyard check {path}` failed (run `make plugins` if a .wasm is missing):\n{stdout}{stderr}");
    stdout.into_owned()
}

/// Run `examples/<name>/<file>` on `nats` (where it lies, so its relative plugin paths resolve as
/// they do for a user). Each test file also runs [`check`] once; here only the plugin files are
/// looked for, so a missing build fails with a useful message rather than a host that never
/// gets ready.
pub async fn start(name: &str, file: &str, nats: &NatsServer) -> Host {
    let config = dir(name).join(file);
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("path = \"")) {
        let path = dir(name).join(line.trim_start_matches("path = \"").trim_end_matches('"'));
        assert!(path.is_file(), "{} is missing: run `make plugins` (or `make test`) first", path.display());
    }
    Host::start_file(&config, nats.url()).await
}

/// [`start`] on a copy of `examples/<name>/<file>` with `from` replaced by `to` (a shorter timer,
/// say), written beside it so its relative paths resolve the same; the copy is removed when the
/// returned file is dropped.
pub async fn start_edited(name: &str, file: &str, nats: &NatsServer, from: &str, to: &str) -> (Host, tempfile::NamedTempFile) {
    let text = std::fs::read_to_string(dir(name).join(file)).expect("the example's config");
    assert!(text.contains(from), "`{from}` is not in examples/{name}/{file}");
    let copy = tempfile::Builder::new().prefix(".test-").suffix(".toml").tempfile_in(dir(name)).expect("a copy beside the example");
    std::fs::write(copy.path(), text.replacen(from, to, 1)).expect("write the copy");
    let file = copy.path().file_name().and_then(|f| f.to_str()).expect("a file name").to_owned();
    (start(name, &file, nats).await, copy)
}

/// The payload as JSON.
pub fn json(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(payload)))
}

/// A header of a stream message, or a panic naming what is there.
pub fn stored_header<'a>(msg: &'a StreamMessage, name: &str) -> &'a str {
    msg.headers.get(name).map(|v| v.as_str()).unwrap_or_else(|| panic!("header {name} missing in {:?}", msg.headers))
}

/// A header of a core message, or a panic naming what is there.
pub fn header<'a>(msg: &'a async_nats::Message, name: &str) -> &'a str {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .unwrap_or_else(|| panic!("header {name} missing in {:?} on {}", msg.headers, msg.subject))
}

/// The next `n` messages of `sub`, each within `limit`.
pub async fn next_n(sub: &mut async_nats::Subscriber, n: usize, limit: Duration, what: &str) -> Vec<async_nats::Message> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let label = format!("{what} ({} of {n} so far)", got.len());
        match within(limit, &label, sub.next()).await {
            Some(msg) => got.push(msg),
            None => panic!("subscription closed waiting for {label}"),
        }
    }
    got
}
