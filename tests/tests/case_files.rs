//! `switchyard test`: the examples' `*.test.toml` cases pass against their
//! runtime.toml, a failing case says what differs, and a bad case file is an
//! error at its line and column. No NATS: the plugins run in the sandbox.

use std::path::Path;
use std::process::Command;

use switchyard_tests::host::binary;
use switchyard_tests::workspace;

/// `switchyard test ARGS`: the exit code and everything printed.
fn switchyard_test(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary()).arg("test").args(args).current_dir(workspace()).output().expect("run switchyard test");
    (output.status.code(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

fn domain_events() -> String {
    workspace().join("examples/domain-events/runtime.toml").display().to_string()
}

/// A folder holding one case file, `cases.test.toml`.
fn cases(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("cases.test.toml"), text).expect("write the cases");
    dir
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8")
}

#[test]
fn every_example_passes_its_cases() {
    for example in [".", "domain-events", "event-patterns", "ride-hailing", "chat-workflow"] {
        // "." is the repository's own runtime.toml and runtime.test.toml (the README's tour).
        let config = if example == "." { "runtime.toml".to_owned() } else { format!("examples/{example}/runtime.toml") };
        let (code, out) = switchyard_test(&[&config]);
        assert_eq!(code, Some(0), "{example}:\n{out}");
        let summary = out.lines().last().unwrap_or_default();
        assert!(summary.starts_with("test result: ok. ") && summary.ends_with(" passed, 0 failed"), "{example}: {summary}");
        assert!(!summary.contains("ok. 0 passed"), "{example} has cases: {summary}");
    }
}

/// The C plugin (written from docs/ABI.md, built with zig cc) and its Rust twin
/// pass the same cases.
#[test]
fn the_c_plugin_passes_the_same_cases_as_its_rust_twin() {
    for config in ["runtime.toml", "rust.toml"] {
        let (code, out) = switchyard_test(&[&format!("examples/content-filter/{config}"), "--cases", "examples/content-filter/cases"]);
        assert_eq!(code, Some(0), "{config}:\n{out}");
        assert!(out.ends_with("test result: ok. 5 passed, 0 failed\n"), "{config}:\n{out}");
    }
}

#[test]
fn a_failing_case_says_what_was_expected_and_what_came_out() {
    let event = workspace().join("examples/domain-events/messages/user-created.json");
    let dir = cases(&format!(
        r#"
[[case]]
name = "the welcome email goes to ada"
route = "user-created"
input = {{ subject = "user.created", payload_file = "{}" }}

[case.expect]
outcome = "ack"
logs = ["welcome email"]
publishes = [{{ subject = "work.email.welcome", json = {{ data = {{ to = "ada@example.com" }} }} }}]

[[case]]
name = "a bare event is wrongly expected to pass"
route = "user-created"
input = {{ subject = "user.created", json = {{ type = "event" }} }}
expect = {{ outcome = "ack" }}
"#,
        event.display()
    ));

    let (code, out) = switchyard_test(&[&domain_events(), "--cases", path(dir.path())]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("test cases.test.toml::a bare event is wrongly expected to pass ... FAILED"), "{out}");
    assert!(out.contains("publishes: expected 1, got 2 [\"work.email.welcome\", \"work.profile.create\"]"), "{out}");
    assert!(out.contains("outcome: expected ack, got reject (\"not an envelope: missing field `id`"), "{out}");
    assert!(out.ends_with("test result: FAILED. 0 passed, 2 failed\n"), "{out}");

    let (code, out) = switchyard_test(&[&domain_events(), "--cases", path(dir.path()), "--format", "json"]);
    assert_eq!(code, Some(1), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(0), Some(2)), "{report}");
    assert_eq!(report["cases"][0]["name"], "the welcome email goes to ada");
}

/// Buckets are in memory: a case's `kv` puts values there, `expect.kv` checks
/// them after it, and a difference or an undeclared bucket is named.
#[test]
fn key_value_buckets_are_in_memory_per_case() {
    let update = workspace().join("examples/ride-hailing/messages/location-update.json");
    let driver = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
    let dir = cases(&format!(
        r#"
[[case]]
name = "stored somewhere else"
route = "location-service-consumer"
input = {{ subject = "location.update.{driver}", payload_file = "{}" }}
expect = {{ outcome = "ack", kv = {{ LOCATIONS = {{ "{driver}" = {{ latitude = 1.5 }}, "other" = "x" }} }} }}

[[case]]
name = "a bucket nobody declared"
route = "location-service-consumer"
input = {{ subject = "location.update.{driver}", payload_file = "{}" }}
kv = {{ NOPE = {{ a = "b" }} }}
expect = {{ outcome = "ack" }}
"#,
        update.display(),
        update.display()
    ));
    let ride_hailing = workspace().join("examples/ride-hailing/runtime.toml").display().to_string();
    let (code, out) = switchyard_test(&[&ride_hailing, "--cases", path(dir.path())]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("kv LOCATIONS/{driver}: payload $.latitude: expected 1.5, got -6.195")), "{out}");
    assert!(out.contains("kv LOCATIONS/other: expected a value, none"), "{out}");
    assert!(out.contains("could not run: `kv` puts values in bucket `NOPE`, which no `[[buckets]]` declares"), "{out}");
}

#[test]
fn a_bad_case_file_is_an_error_at_its_line_and_column() {
    let dir = cases(
        "[[case]]\nname = \"typo\"\nroute = \"user-created\"\ninput = { subject = \"user.created\", payloud = \"x\" }\nexpect = { outcome = \"ack\" }\n",
    );
    let (code, out) = switchyard_test(&[&domain_events(), "--cases", path(dir.path())]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("cases.test.toml:4:37: error: unknown field `payloud`, expected one of `subject`"), "{out}");

    let dir = cases(
        "[[case]]\nname = \"gone\"\nroute = \"user-deleted\"\ninput = { subject = \"user.deleted\" }\nexpect = { outcome = \"ack\", reason = \"(\" }\n",
    );
    let (code, out) = switchyard_test(&[&domain_events(), "--cases", path(dir.path())]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("cases.test.toml:3:9: error: case `gone`: no route `user-deleted` in the runtime.toml"), "{out}");
    assert!(out.contains("cases.test.toml:5:22: error: case `gone`: `(` is not a regex: unclosed group"), "{out}");
    assert!(out.contains("2 problem(s) in the test cases; nothing was run"), "{out}");
}
