//! Who may use the control subject: hosts with `[host.control] allowed_keys`
//! take only requests signed by one of those keys (and log the others), and the
//! NATS permissions of docs/examples/nats-permissions.conf keep other users off
//! the control subject, the operators' replies and the dead-letter stream.

use std::time::Duration;

use async_nats::HeaderMap;
use futures::StreamExt;
use switchyard_tests::host::{binary, preamble};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within, workspace};

const WAIT: Duration = Duration::from_secs(10);
const STATUS: &str = "switchyard.control.status";
const RELOAD: &str = "switchyard.control.reload";

/// Run the CLI: whether it succeeded, and everything it printed.
async fn switchyard(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = tokio::process::Command::new(binary());
    for name in ["SWITCHYARD_CONTROL_SEED", "SWITCHYARD_CONTROL_SEED_FILE", "SWITCHYARD_INBOX_PREFIX"] {
        command.env_remove(name);
    }
    command.args(args).envs(env.iter().copied()).kill_on_drop(true);
    let output = within(Duration::from_secs(30), "the switchyard command", command.output()).await.expect("run switchyard");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

/// A key pair from `switchyard control-key new`: (public key, seed).
async fn new_key() -> (String, String) {
    let (ok, out) = switchyard(&["control-key", "new"], &[]).await;
    assert!(ok, "control-key new:\n{out}");
    let field = |name: &str| out.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).expect("a field");
    (field("public key:"), field("seed:"))
}

/// The headers `switchyard control-key sign` prints for a request.
async fn sign(seed: &str, subject: &str, reply: &str, time: Option<u64>) -> HeaderMap {
    let time = time.map(|t| t.to_string());
    let mut args = vec!["control-key", "sign", subject, "--reply", reply, "--control-seed", seed];
    if let Some(time) = &time {
        args.extend(["--time", time]);
    }
    let (ok, out) = switchyard(&args, &[]).await;
    assert!(ok, "control-key sign:\n{out}");
    let mut headers = HeaderMap::new();
    for line in out.lines() {
        let (name, value) = line.split_once(": ").expect("`Name: value` lines");
        headers.insert(name, value);
    }
    assert_eq!(headers.len(), 3, "{out}");
    headers
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Send a control request with `headers` (none: unsigned) on a reply subject of
/// our choosing, and return the one answer.
async fn ask(client: &async_nats::Client, subject: &str, reply: &str, headers: Option<HeaderMap>) -> async_nats::Message {
    let mut answers = within(WAIT, "subscribing to the reply subject", client.subscribe(reply.to_owned())).await.expect("subscribe");
    let sent = match headers {
        Some(headers) => client.publish_with_reply_and_headers(subject.to_owned(), reply.to_owned(), headers, "".into()).await,
        None => client.publish_with_reply(subject.to_owned(), reply.to_owned(), "".into()).await,
    };
    sent.expect("publish");
    within(WAIT, "an answer to the control request", answers.next()).await.expect("an answer")
}

/// The refusal an answer carries, if it is one: (code, reason).
fn refusal(answer: &async_nats::Message) -> Option<(String, String)> {
    let headers = answer.headers.as_ref()?;
    let value = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    Some((value("Nats-Service-Error-Code")?, value("Nats-Service-Error")?))
}

fn host_config(url: &str, allowed: &[&str]) -> String {
    let keys: Vec<String> = allowed.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "{}[host.control]\nallowed_keys = [{}]\n\n[plugins.echo]\npath = \"{}\"\n\n[[routes]]\nname = \"greet\"\nplugin = \"echo\"\nsubjects = [\"greet.>\"]\n",
        preamble(url),
        keys.join(", "),
        plugin("echo").display()
    )
}

/// The host's log has a refusal naming `key` and `subject`.
async fn logged_refusal(host: &Host, key: &str, subject: &str) {
    let (key, subject) = (format!("key={key}"), format!("subject={subject}"));
    eventually(WAIT, "the host to log the refusal", || async {
        host.output()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("control request refused") && l.contains(&key) && l.contains(&subject))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_allowed_keys_only_signed_requests_are_answered() {
    let nats = NatsServer::start();
    let ((ops, ops_seed), (other, other_seed)) = (new_key().await, new_key().await);
    let host = Host::start(&host_config(nats.url(), &[&ops])).await;
    let client = nats.client().await;
    let url = nats.url();

    // Unsigned: refused, with the reason, and logged.
    for subject in [STATUS, RELOAD] {
        let answer = ask(&client, subject, &client.new_inbox(), None).await;
        let (code, reason) = refusal(&answer).unwrap_or_else(|| panic!("unsigned {subject} answered: {answer:?}"));
        assert_eq!(code, "403");
        assert!(reason.contains("unsigned"), "{reason}");
        assert!(answer.payload.is_empty(), "a refusal tells nothing about the host");
        logged_refusal(&host, "unsigned", subject).await;
    }
    // Signed by a key that is not allowed.
    let inbox = client.new_inbox();
    let answer = ask(&client, STATUS, &inbox, Some(sign(&other_seed, STATUS, &inbox, None).await)).await;
    let (_, reason) = refusal(&answer).expect("a refusal");
    assert!(reason.contains("not allowed") && reason.contains(&other), "{reason}");
    logged_refusal(&host, &other, STATUS).await;
    // Signed by the allowed key, two minutes ago.
    let inbox = client.new_inbox();
    let stale = sign(&ops_seed, RELOAD, &inbox, Some(now_millis() - 120_000)).await;
    let (_, reason) = refusal(&ask(&client, RELOAD, &inbox, Some(stale)).await).expect("a refusal");
    assert!(reason.contains("s ago, outside ±60 s"), "{reason}");
    // Signed for another reply subject: someone else's request, copied.
    let (inbox, elsewhere) = (client.new_inbox(), client.new_inbox());
    let copied = sign(&ops_seed, STATUS, &inbox, None).await;
    let (_, reason) = refusal(&ask(&client, STATUS, &elsewhere, Some(copied)).await).expect("a refusal");
    assert!(reason.contains("signature does not match"), "{reason}");
    // Signed right: answered, once.
    let inbox = client.new_inbox();
    let signed = sign(&ops_seed, STATUS, &inbox, None).await;
    let answer = ask(&client, STATUS, &inbox, Some(signed.clone())).await;
    assert!(refusal(&answer).is_none(), "{answer:?}");
    let status: serde_json::Value = serde_json::from_slice(&answer.payload).expect("a status");
    assert_eq!(status["routes"][0]["name"], "greet", "{status}");
    let (_, reason) = refusal(&ask(&client, STATUS, &inbox, Some(signed)).await).expect("a refusal");
    assert!(reason.contains("already used"), "{reason}");

    // The CLI: refused without a seed, answered with one (flag, environment or file).
    let (ok, out) = switchyard(&["status", "--url", url], &[]).await;
    assert!(!ok && out.contains("refused: unsigned control request"), "{out}");
    let (ok, out) = switchyard(&["status", "--url", url, "--control-seed", &other_seed], &[]).await;
    assert!(!ok && out.contains("refused:") && out.contains("not allowed"), "{out}");
    let (ok, out) = switchyard(&["status", "--url", url], &[("SWITCHYARD_CONTROL_SEED", &ops_seed)]).await;
    assert!(ok && out.contains("route greet") && out.contains("no reload yet"), "{out}");
    let seed_file = host.dir().join("ops.seed");
    std::fs::write(&seed_file, format!("{ops_seed}\n")).expect("write the seed file");
    let seed_file = seed_file.to_str().expect("utf-8 path");
    // A reload waits 10 s for every host's answer: run the refused one alongside.
    let (signed, unsigned) = (["reload", "--url", url, "--control-seed-file", seed_file], ["reload", "--url", url]);
    let ((ok, out), (refused_ok, refused_out)) = tokio::join!(switchyard(&signed, &[]), switchyard(&unsigned, &[]));
    assert!(ok && out.contains("reload: nothing changed"), "{out}");
    assert!(!refused_ok && refused_out.contains("refused: unsigned control request"), "{refused_out}");
    let (ok, out) = switchyard(&["status", "--url", url, "--control-seed", &ops_seed], &[]).await;
    assert!(ok && out.contains(&format!("request over NATS signed by {ops}")), "the reload names its signer:\n{out}");
    assert!(host.output().contains(&format!("control: reload requested key={ops}")), "{}", host.output());

    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}

#[tokio::test]
async fn without_allowed_keys_requests_are_not_checked() {
    let nats = NatsServer::start();
    let host = Host::start(&host_config(nats.url(), &[])).await;
    let client = nats.client().await;
    let answer = ask(&client, STATUS, &client.new_inbox(), None).await;
    assert!(refusal(&answer).is_none(), "{answer:?}");
    // Signatures are ignored, whoever made them.
    let (_, seed) = new_key().await;
    let inbox = client.new_inbox();
    let answer = ask(&client, RELOAD, &inbox, Some(sign(&seed, RELOAD, &inbox, Some(1)).await)).await;
    let report: serde_json::Value = serde_json::from_slice(&answer.payload).expect("a reload report");
    assert_eq!(report["cause"], "request over NATS", "{report}");
    let (ok, out) = switchyard(&["status", "--url", nats.url()], &[]).await;
    assert!(ok && out.contains("route greet"), "{out}");
    let (status, output) = host.stop().await;
    assert!(status.success() && !output.contains("control request refused"), "{output}");
}

/// A client of the permissions example's server as `user`, with the server's
/// errors (permission violations) in a channel.
async fn connect_as(
    url: &str,
    user: &str,
    inbox_prefix: Option<&str>,
) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (errors, received) = tokio::sync::mpsc::unbounded_channel();
    let mut options = async_nats::ConnectOptions::with_user_and_password(user.into(), format!("change-me-{}", password_of(user)))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(err) = event {
                    let _ = errors.send(err.to_string());
                }
            }
        });
    if let Some(prefix) = inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    let client = within(WAIT, "connecting as a user of the example", options.connect(url)).await.expect("connect");
    (client, received)
}

fn password_of(user: &str) -> &str {
    if user == "switchyard" { "host" } else { user }
}

/// The next server error mentions `subject`.
async fn violation(errors: &mut tokio::sync::mpsc::UnboundedReceiver<String>, subject: &str) {
    let error = within(WAIT, "a permissions violation", errors.recv()).await.expect("an error");
    assert!(error.to_lowercase().contains("permissions violation") && error.contains(subject), "{error}");
}

#[tokio::test]
async fn the_example_nats_permissions_keep_others_off_the_control_subject() {
    let conf = workspace().join("docs/examples/nats-permissions.conf");
    let nats = NatsServer::start_with_args(&["-c", conf.to_str().expect("utf-8 path")]);
    let url = nats.url();
    let config = host_config(url, &[]).replace("[nats]\n", "[nats]\nuser = \"switchyard\"\npassword = \"change-me-host\"\n");
    let host = Host::start(&config).await;
    let file = host.dir().join("runtime.toml");
    let file = file.to_str().expect("utf-8 path");
    let app = ["--url", url, "--user", "app", "--password", "change-me-app"];
    let ops = ["--url", url, "--user", "ops", "--password", "change-me-ops", "--inbox-prefix", "_INBOX_ops"];

    // An application user uses the routes, and sees everything but what is denied.
    let (app_client, mut app_errors) = connect_as(url, "app", None).await;
    let mut everything = app_client.subscribe(">").await.expect("subscribe >");
    let answer = within(WAIT, "a request as app", app_client.request("greet.x", "hi".into())).await.expect("request");
    assert_eq!(&answer.payload[..], b"hi");
    // It can neither ask for status nor reload, nor listen in.
    let (ok, out) = switchyard(&["status", "--wait", "1s"].iter().chain(&app).copied().collect::<Vec<_>>(), &[]).await;
    assert!(!ok && out.contains("no host answered"), "{out}");
    app_client.publish(RELOAD, "".into()).await.expect("publish");
    violation(&mut app_errors, RELOAD).await;
    let _denied = app_client.subscribe("switchyard.control.>").await.expect("subscribe");
    violation(&mut app_errors, "switchyard.control.>").await;
    let _denied = app_client.subscribe("_INBOX_ops.>").await.expect("subscribe");
    violation(&mut app_errors, "_INBOX_ops.>").await;
    // Nor read or copy the dead-letter stream.
    app_client.publish("$JS.API.STREAM.INFO.SWITCHYARD_DLQ", "".into()).await.expect("publish");
    violation(&mut app_errors, "$JS.API.STREAM.INFO.SWITCHYARD_DLQ").await;
    app_client.publish("$JS.API.STREAM.MSG.GET.SWITCHYARD_DLQ", "{\"seq\":1}".into()).await.expect("publish");
    violation(&mut app_errors, "$JS.API.STREAM.MSG.GET.SWITCHYARD_DLQ").await;
    app_client.publish("$JS.API.STREAM.CREATE.COPY", "{}".into()).await.expect("publish");
    violation(&mut app_errors, "$JS.API.STREAM.CREATE.COPY").await;
    let _denied = app_client.subscribe("switchyard.dlq.>").await.expect("subscribe");
    violation(&mut app_errors, "switchyard.dlq.>").await;
    let _denied = app_client.subscribe("$JS.EVENT.ADVISORY.API").await.expect("subscribe");
    violation(&mut app_errors, "$JS.EVENT.ADVISORY.API").await;

    // Neither can the host user (a plugin allowed to publish anywhere).
    let (host_client, mut host_errors) = connect_as(url, "switchyard", None).await;
    host_client.publish(RELOAD, "".into()).await.expect("publish");
    violation(&mut host_errors, RELOAD).await;

    // The operator can: status (no reload happened), reload, dead letters.
    let (ok, out) = switchyard(&["status"].iter().chain(&ops).copied().collect::<Vec<_>>(), &[]).await;
    assert!(ok && out.contains("route greet") && out.contains("no reload yet"), "{out}");
    // Done once the one host answered, not after the whole --wait (10 s).
    let asked = std::time::Instant::now();
    let (ok, out) = switchyard(&["reload"].iter().chain(&ops).copied().collect::<Vec<_>>(), &[]).await;
    assert!(ok && out.contains("reload: nothing changed"), "{out}");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5), "reload took {:?} for one host", asked.elapsed());
    let (ok, out) = switchyard(&["dlq", "list", "--config", file].iter().chain(&ops).copied().collect::<Vec<_>>(), &[]).await;
    assert!(ok && out.contains("0 dead letter(s)"), "{out}");

    // The application user's `>` saw its own traffic, none of the operator's.
    app_client.publish("greet.last", "marker".into()).await.expect("publish");
    let mut seen = Vec::new();
    loop {
        let msg = within(WAIT, "the app's own marker", everything.next()).await.expect("a message");
        if msg.subject.as_str() == "greet.last" {
            break;
        }
        seen.push(msg.subject.to_string());
    }
    assert!(seen.iter().any(|s| s == "greet.x"), "{seen:?}");
    assert!(!seen.iter().any(|s| ["switchyard.", "_INBOX_ops.", "$JS."].iter().any(|p| s.starts_with(p))), "the app user saw {seen:?}");
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}
