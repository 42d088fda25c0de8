//! Without `nats.url` the host runs its own nats-server, and stops it on exit.

use std::process::Command;
use std::time::Duration;

use switchyard_tests::host::binary;
use switchyard_tests::{Host, plugin, within};

#[tokio::test]
async fn the_host_starts_and_stops_its_own_nats_server() {
    let config = format!(
        r#"[nats.embedded]
port = 0
data_dir = "nats-data"
binary = "{}"

[plugins.echo]
path = "{}"

[[routes]]
name = "greet"
plugin = "echo"
subjects = ["greet.*"]
"#,
        switchyard_tests::nats::binary().display(),
        plugin("echo").display()
    );
    let host = Host::start(&config).await;
    let output = host.output();
    let url = output
        .lines()
        .find_map(|line| line.strip_prefix("switchyard serving on "))
        .unwrap_or_else(|| panic!("no serving line in:\n{output}"))
        .to_owned();
    assert!(url.starts_with("nats://127.0.0.1:"), "loopback only: {url}");
    assert!(host.dir().join("nats-data/jetstream").is_dir(), "JetStream data in the configured folder");

    let client = within(Duration::from_secs(10), "connect", async_nats::connect(&url)).await.expect("connect");
    let reply = within(Duration::from_secs(10), "reply", client.request("greet.x", "hi".into())).await.expect("request");
    assert_eq!(&reply.payload[..], b"hi");
    drop(client);

    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
    assert!(output.contains("embedded nats-server stopped"), "{output}");
    let reconnect = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(1)).connect(&url),
    )
    .await;
    assert!(!matches!(reconnect, Ok(Ok(_))), "the embedded server is still running at {url}");
}

#[test]
fn a_missing_nats_server_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("runtime.toml"), "[nats.embedded]\nport = 0\n").expect("write config");
    let output = Command::new(binary())
        .args(["run", "runtime.toml"])
        .current_dir(dir.path())
        .env_remove("NATS_SERVER_BIN")
        .env("SWITCHYARD_ADMIN_LISTEN", "off")
        .env("PATH", "")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: nats-server not found: set `nats.url` to use a running server"), "{stderr}");
}
