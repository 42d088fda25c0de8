//! The CLI as a plugin author and an operator use it: `invoke` without NATS,
//! `check` on good and bad configs.

use std::process::{Command, Output};

use switchyard_tests::host::binary;
use switchyard_tests::{modules, plugin, workspace};

fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).current_dir(workspace()).output().expect("run switchyard")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn invoke_prints_the_outcome_and_the_publishes() {
    let transform = plugin("transform");
    let output = run(&[
        "invoke",
        transform.to_str().expect("utf-8 path"),
        "--subject",
        "orders.created",
        "--data",
        r#"{"name":"ada"}"#,
        "--config",
        r#"target = "processed""#,
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "invoke failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("outcome: ack\n"), "{stdout}");
    assert!(stdout.contains("publish: processed.orders.created\n"), "{stdout}");
    assert!(stdout.contains(r#""name_upper":"ADA""#), "{stdout}");
}

#[test]
fn invoke_shows_a_reply_and_a_refused_config() {
    let echo = plugin("echo");
    let output = run(&["invoke", echo.to_str().expect("utf-8"), "--reply", "_INBOX.1", "--data", "hello"]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("outcome: reply\n  headers: echoed-by=echo\n  payload: hello\n"), "{stdout}");

    // transform refuses to start without its `target`.
    let transform = plugin("transform");
    let output = run(&["invoke", transform.to_str().expect("utf-8"), "--data", "{}"]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("plugin `transform`: init refused the configuration: missing `target` (string)"), "{stderr}");
}

#[test]
fn invoke_reports_a_trap_without_crashing() {
    let faulty = plugin("faulty");
    let output = run(&["invoke", faulty.to_str().expect("utf-8"), "--data", r#"{"action":"panic"}"#]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(5), "a failed call: {stdout}");
    assert!(stdout.contains("outcome: failed: plugin trapped"), "{stdout}");
    assert!(stdout.contains("faulty: asked to panic"), "{stdout}");
}

/// Each outcome its own exit status, for scripts; `--json` for tools;
/// `--config key=value` and `--config-file`; a bad `--config` said plainly.
#[test]
fn invoke_exit_statuses_json_and_config_entries() {
    let faulty = plugin("faulty");
    let faulty = faulty.to_str().expect("utf-8");
    for (action, code) in [("ack", 0), ("reply", 0), ("retry", 3), ("reject", 4), ("trap", 5)] {
        let output = run(&["invoke", faulty, "--data", &format!(r#"{{"action":"{action}"}}"#), "--reply", "_INBOX.1"]);
        assert_eq!(output.status.code(), Some(code), "{action}: {:?}", text(&output));
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "target = \"from-file\"\n").expect("write");
    let transform = plugin("transform");
    let transform = transform.to_str().expect("utf-8");
    let output = run(&["invoke", transform, "--data", r#"{"name":"ada"}"#, "--config-file", file.to_str().expect("utf-8"), "--json"]);
    let (stdout, stderr) = text(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(report["outcome"]["kind"], "ack");
    assert_eq!(report["publishes"][0]["subject"], "from-file.invoke.test");
    assert_eq!(report["publishes"][0]["sent"], true);

    let output = run(&["invoke", transform, "--data", "{}", "--config-file", file.to_str().expect("utf-8"), "--config", "target=over"]);
    assert!(text(&output).0.contains("publish: over.invoke.test"), "{:?}", text(&output));
    let output = run(&["invoke", transform, "--config", "garbage"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("--config `garbage`: expected `key=value` or a TOML table"), "{:?}", text(&output));
}

#[test]
fn check_accepts_the_default_runtime_toml() {
    let output = run(&["check", "runtime.toml"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("runtime.toml: ok (2 plugin(s), 2 route(s), 1 stream(s))"), "{stdout}");
}

#[test]
fn check_lists_bad_plugins_at_their_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    modules::write(dir.path(), "missing", modules::MISSING_HANDLE);
    modules::write_not_wasm(dir.path());
    let config = format!(
        "[plugins.echo]\npath = \"{}\"\n\n[plugins.missing]\npath = \"missing.wasm\"\n\n[plugins.notwasm]\npath   = \"notwasm.wasm\"\n",
        plugin("echo").display()
    );
    std::fs::write(dir.path().join("runtime.toml"), config).expect("write config");
    let output = Command::new(binary()).args(["check", "runtime.toml"]).current_dir(dir.path()).output().expect("run");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let notwasm_path = dir.path().join("notwasm.wasm");
    let expected = format!(
        "runtime.toml:5:8: error: plugin `missing`: module does not export `switchyard_handle`; was it built with the switchyard-sdk handler macro?\n\
         runtime.toml:8:10: error: plugin `notwasm`: `{}` is not a wasm module: the file does not start with the wasm magic bytes\n\
         2 problems found in runtime.toml\n",
        notwasm_path.display()
    );
    assert_eq!(stderr, expected);
}

/// Each cause said once, and a config's problems not wrapped in a second `error:`.
#[test]
fn errors_say_each_cause_once() {
    let output = run(&["req", "anything", "x", "--url", "nats://127.0.0.1:1"]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    // Without --url and without a runtime.toml, the default address is named as such.
    let empty = tempfile::tempdir().expect("temp dir");
    let output =
        Command::new(binary()).args(["pub", "x", "y"]).current_dir(empty.path()).env_remove("SWITCHYARD_NATS_URL").output().expect("run");
    let (_, stderr) = text(&output);
    // (Unless a server happens to listen on 4222 here, as `make run`'s does.)
    if !output.status.success() {
        assert!(stderr.contains("nats://127.0.0.1:4222 (the default: no --url, and no `runtime.toml` here"), "{stderr}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[[routes]]\nname = 5\n").expect("write");
    let output = run(&["run", config.to_str().expect("utf-8")]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.starts_with(&format!("{}:2:8: error: route #1: `name`", config.display())), "{stderr}");
}

/// A route that fails to parse does not move a later route's problems onto it,
/// and a plugin that is not wasm is reported beside the file's other problems:
/// everything in one run, in file order, each at its own place.
#[test]
fn check_lists_every_problem_in_file_order_at_its_own_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("runtime.toml");
    let toml = format!(
        "[plugins.echo]\npath = \"{}\"\n\n[plugins.bad]\npath = \"runtime.toml\"\n\n\
         [[routes]]\nname = \"one\"\nplugin = \"echo\"\nsubjects = [\"a\"]\nconcurrency = \"many\"\n\n\
         [[routes]]\nname = \"two\"\nplugin = \"echo\"\nsubjects = [\"bad subject\"]\n\n\
         [[routes]]\nname = \"three\"\nplugin = \"bad\"\nsubjects = [\"c\"]\n",
        plugin("echo").display()
    );
    std::fs::write(&config, toml).expect("write");
    let output = run(&["check", config.to_str().expect("utf-8")]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    let at: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{}:", config.display())))
        .map(|l| l.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(at, ["5:8", "11:15", "16:13"], "{stderr}");
    assert!(stderr.contains("5:8: error: plugin `bad`: `") && stderr.contains("is not a wasm module"), "{stderr}");
    assert!(stderr.contains("16:13: error: route `two`: invalid subject `bad subject`"), "{stderr}");
}
