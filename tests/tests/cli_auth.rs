//! The CLI against a NATS that needs credentials: it authenticates the way the
//! host does (runtime.toml's `[nats]`), or with flags, or from the URL.

use std::time::Duration;

use switchyard_tests::host::{binary, preamble};
use switchyard_tests::{Host, NatsServer, plugin, within};

async fn switchyard(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(binary()).args(args).kill_on_drop(true).output();
    let output = within(Duration::from_secs(20), "the switchyard command", output).await.expect("run switchyard");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn client_verbs_use_the_configs_credentials_or_the_flags() {
    let nats = NatsServer::start_with_args(&["--user", "ops", "--pass", "s3cret"]);
    let config = format!(
        "{}[plugins.echo]\npath = \"{}\"\n\n[[routes]]\nname = \"greet\"\nplugin = \"echo\"\nsubjects = [\"greet.>\"]\n",
        preamble(nats.url()).replace("[nats]\n", "[nats]\nuser = \"ops\"\npassword = \"s3cret\"\n"),
        plugin("echo").display()
    );
    let host = Host::start(&config).await;
    let file = host.dir().join("runtime.toml");
    let file = file.to_str().expect("utf-8 path");

    let (ok, out) = switchyard(&["status", "--config", file]).await;
    assert!(ok && out.contains("route greet"), "status with the file's [nats] user:\n{out}");
    let (ok, out) = switchyard(&["dlq", "list", "--config", file]).await;
    assert!(ok && out.contains("0 dead letter(s)"), "dlq list with the file's [nats] user:\n{out}");
    let (ok, out) = switchyard(&["req", "greet.x", "hi", "--url", nats.url(), "--user", "ops", "--password", "s3cret"]).await;
    assert!(ok && out.contains("hi"), "req with --user/--password:\n{out}");
    let with_userinfo = nats.url().replace("nats://", "nats://ops:s3cret@");
    let (ok, out) = switchyard(&["pub", "greet.y", "hi", "--url", &with_userinfo]).await;
    assert!(ok, "pub with user:password in the URL:\n{out}");
    let (ok, out) = switchyard(&["pub", "greet.z", "hi", "--url", nats.url(), "--config", "/nonexistent.toml"]).await;
    assert!(
        !ok && out.contains("authorization violation: the server refused a connection without credentials"),
        "without credentials the server refuses, and the CLI says what it sent:\n{out}"
    );
    host.stop().await;
}
