//! Misbehaving plugins never take the host down: bad files are refused at load
//! with a clear reason, failures at run time take the retry/dead-letter path, and
//! the other routes keep serving.

use std::time::Duration;

use async_nats::jetstream;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, messages, pending};
use switchyard_tests::{Host, NatsServer, eventually, modules, plugin, within};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_are_contained_and_reported() {
    let nats = NatsServer::start();
    let files = tempfile::tempdir().expect("temp dir");
    let missing = modules::write(files.path(), "missing", modules::MISSING_HANDLE);
    let abi2 = modules::write(files.path(), "abi2", modules::ABI_V2);
    let notwasm = modules::write_not_wasm(files.path());
    let faulty = plugin("faulty");
    let mut config = preamble(nats.url());
    config.push_str(&format!(
        r#"
[[streams]]
name = "BAD"
subjects = ["bad.>"]
retention = "workqueue"

[plugins.echo]
path = "{echo}"

[plugins.slow]
path = "{faulty}"
timeout = "300ms"

[plugins.hungry]
path = "{faulty}"
memory = "32MiB"

[plugins.faulty]
path = "{faulty}"

[plugins.missing]
path = "{missing}"

[plugins.abi2]
path = "{abi2}"

[plugins.notwasm]
path = "{notwasm}"

[[routes]]
name = "greet"
plugin = "echo"
subjects = ["greet.*"]
"#,
        echo = plugin("echo").display(),
        faulty = faulty.display(),
        missing = missing.display(),
        abi2 = abi2.display(),
        notwasm = notwasm.display(),
    ));
    for (route, plugin_name, filter) in [
        ("loop", "slow", "bad.loop"),
        ("alloc", "hungry", "bad.alloc"),
        ("panic", "faulty", "bad.panic"),
        ("trap", "faulty", "bad.trap"),
        ("garbage", "faulty", "bad.garbage"),
    ] {
        config.push_str(&format!(
            "\n[[routes]]\nname = \"{route}\"\nplugin = \"{plugin_name}\"\nstream = \"BAD\"\nsubjects = [\"{filter}\"]\nmax_deliver = 2\nretry = {{ delays = [\"100ms\"] }}\n"
        ));
    }
    for (route, plugin_name) in [("r-missing", "missing"), ("r-abi2", "abi2"), ("r-notwasm", "notwasm")] {
        config.push_str(&format!("\n[[routes]]\nname = \"{route}\"\nplugin = \"{plugin_name}\"\nsubjects = [\"{route}.>\"]\n"));
    }

    let host = Host::start_partial(&config).await;
    let output = host.output();
    for expected in [
        "plugin `missing`: module does not export `switchyard_handle`",
        "plugin `abi2`: built for ABI version 2, this host speaks version 1",
        "plugin `notwasm`:",
        "the file does not start with the wasm magic bytes",
        "route r-missing: NOT STARTED",
        "ready: 6 of 9 route(s) running",
    ] {
        assert!(output.contains(expected), "expected `{expected}` in the host output:\n{output}");
    }

    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    for action in ["loop", "alloc", "panic", "trap", "garbage"] {
        js.publish(format!("bad.{action}"), format!(r#"{{"action":"{action}"}}"#).into()).await.expect("publish").await.expect("ack");
    }
    eventually(WAIT, "five dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await == 5).then_some(()) }).await;
    for route in ["loop", "alloc", "panic", "trap", "garbage"] {
        eventually(WAIT, "nothing pending", || async { (pending(&js, "BAD", route).await == (0, 0)).then_some(()) }).await;
    }

    let letters = messages(&js, "SWITCHYARD_DLQ").await;
    let reason_of = |route: &str| -> String {
        let letter = letters
            .iter()
            .find(|m| m.headers.get("Switchyard-Route").map(|v| v.as_str()) == Some(route))
            .unwrap_or_else(|| panic!("no dead letter for {route}"));
        assert_eq!(letter.headers.get("Switchyard-Delivery-Count").map(|v| v.as_str()), Some("2"), "{route}: retried once");
        letter.headers.get("Switchyard-Reason").map(|v| v.to_string()).unwrap_or_default()
    };
    let expectations = [
        ("loop", "timed out after 300ms"),
        ("alloc", "exceeded its memory limit"),
        ("panic", "faulty: asked to panic"),
        ("trap", "trapped"),
        ("garbage", "returned an outcome that does not decode"),
    ];
    for (route, needle) in expectations {
        let reason = reason_of(route);
        assert!(reason.contains(needle), "{route}: reason `{reason}` lacks `{needle}`");
        assert!(reason.starts_with("max_deliver (2) reached"), "{route}: {reason}");
    }

    // The healthy route never noticed.
    let reply = within(WAIT, "echo reply", client.request("greet.after", "still here".into())).await.expect("request");
    assert_eq!(&reply.payload[..], b"still here");
    let (status, output) = host.stop().await;
    assert!(status.success(), "host exit {status}:\n{output}");
}

/// What a plugin logs cannot start a line of the host's log: a newline in the
/// text is escaped, and the line keeps the plugin's name.
#[tokio::test]
async fn a_plugin_cannot_forge_host_log_lines() {
    let nats = NatsServer::start();
    let config = format!(
        "{}[plugins.faulty]\npath = \"{}\"\n\n[[routes]]\nname = \"logs\"\nplugin = \"faulty\"\nsubjects = [\"logs.>\"]\n",
        preamble(nats.url()),
        plugin("faulty").display()
    );
    let host = Host::start(&config).await;
    let client = nats.client().await;
    // Valid JSON with a raw newline in it; the `log` action logs the payload.
    let payload = "{\"action\":\"log\",\n\"x\":\"ERROR switchyard: forged\"}";
    within(WAIT, "the reply", client.request("logs.a", payload.into())).await.expect("request");
    let (_, output) = host.stop().await;
    let forged: Vec<&str> = output.lines().filter(|line| line.trim_start().starts_with("\"x\"")).collect();
    assert!(forged.is_empty(), "a plugin started lines of its own: {forged:?}\n{output}");
    let logged = output.lines().find(|line| line.contains("ERROR switchyard: forged")).expect("the plugin's line");
    assert!(logged.contains("\\n\"x\"") && logged.contains("plugin=\"faulty\""), "{logged}");
}
