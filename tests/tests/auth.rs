//! TLS and every authentication method, against a real nats-server that
//! demands it: the host connects and serves with the right credential in
//! `[nats]`, and with a wrong one it exits at once (no retries until
//! `nats.startup_timeout`) with an error that names the cause.
//!
//! Certificates, nkeys and JWTs are made in the test (switchyard_tests::auth).

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use futures::future::join_all;
use switchyard_tests::auth::{Ca, CertFiles, Operator, tls_block, user_nkey, write};
use switchyard_tests::host::{binary, preamble};
use switchyard_tests::{Host, NatsServer, plugin, within};

/// How long a refused host may take to exit, start-up of the process included.
/// A retried refusal would take `nats.startup_timeout` (60 s by default).
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// A runtime.toml on `url` whose `[nats]` has `keys`, serving `greet.>` with echo.
fn config(url: &str, keys: &str) -> String {
    format!(
        "{}[plugins.echo]\npath = \"{}\"\n\n[[routes]]\nname = \"greet\"\nplugin = \"echo\"\nsubjects = [\"greet.>\"]\n",
        preamble(url).replace("[nats]\n", &format!("[nats]\n{keys}\n")),
        plugin("echo").display()
    )
}

/// A path as a TOML string.
fn toml(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn server(conf: &Path) -> NatsServer {
    NatsServer::start_with_args(&["-c", conf.to_str().expect("utf-8 path")])
}

/// A wrong credential and what the error must say.
struct Refusal<'a> {
    what: &'a str,
    keys: String,
    says: &'a [&'a str],
}

/// Start a host with `keys` (and, at the same time, one per refusal): the
/// first must serve a request made with `client`, each refused one must exit
/// within [`REFUSED_WITHIN`], after one try, saying why. Returns what each
/// refused host printed.
async fn serves_and_refuses(url: &str, keys: &str, client: ConnectOptions, refusals: &[Refusal<'_>]) -> Vec<String> {
    let good = config(url, keys);
    let refused = join_all(refusals.iter().map(|r| async move {
        let started = Instant::now();
        let (status, out) = Host::start_failing(&config(url, &r.keys), Duration::from_secs(15)).await;
        (r, status, out, started.elapsed())
    }));
    let (host, refused) = tokio::join!(Host::start(&good), refused);

    // The right credential: the host serves, as seen by a client of its own.
    let client = within(Duration::from_secs(10), "the test client to connect", client.connect(url)).await.expect("test client connects");
    let reply =
        within(Duration::from_secs(10), "a reply from echo", client.request("greet.auth", "hello".into())).await.expect("echo replies");
    assert_eq!(&reply.payload[..], b"hello", "the echo plugin's reply");
    let echoed_by = reply.headers.as_ref().and_then(|h| h.get("echoed-by")).map(|v| v.as_str().to_owned());
    assert_eq!(echoed_by.as_deref(), Some("echo"), "the reply comes from the plugin");

    // The CLI, reading the same runtime.toml, authenticates the same way.
    let file = host.dir().join("runtime.toml");
    let cli = tokio::process::Command::new(binary())
        .args(["req", "greet.cli", "hi-from-cli", "--config", file.to_str().expect("utf-8 path")])
        .kill_on_drop(true)
        .output();
    let cli = within(Duration::from_secs(20), "switchyard req", cli).await.expect("run switchyard req");
    let cli_out = format!("{}{}", String::from_utf8_lossy(&cli.stdout), String::from_utf8_lossy(&cli.stderr));
    assert!(cli.status.success() && cli_out.contains("hi-from-cli"), "switchyard req --config with the host's [nats]:\n{cli_out}");
    host.stop().await;

    let mut outputs = Vec::new();
    for (refusal, status, out, took) in refused {
        let what = refusal.what;
        assert!(!status.success(), "{what}: the host must exit with an error:\n{out}");
        let error = out.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{what}: no `error:` line:\n{out}"));
        for word in refusal.says {
            assert!(error.contains(word), "{what}: the error should say `{word}`:\n{error}\n\nall output:\n{out}");
        }
        assert!(!out.contains("retrying"), "{what}: a refusal must not be retried:\n{out}");
        assert!(took < REFUSED_WITHIN, "{what}: the host took {took:?} to give up (limit {REFUSED_WITHIN:?}):\n{out}");
        eprintln!("{what}: refused in {took:?}: {error}");
        outputs.push(out);
    }
    outputs
}

#[tokio::test]
async fn tls_with_the_servers_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("switchyard test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let other_ca = Ca::new("some other CA").write(dir.path(), "other-ca.pem");
    let cert = ca.server(dir.path(), "server");
    let nats = server(&write(dir.path(), "tls.conf", &tls_block(&cert, &ca_file, false)));
    assert!(nats.url().starts_with("tls://"), "the server announces TLS: {}", nats.url());

    let client = ConnectOptions::new().add_root_certificates(ca_file.clone()).require_tls(true);
    let refusals = [
        Refusal { what: "no [nats.tls]: the system's CAs", keys: String::new(), says: &["TLS", "UnknownIssuer", "nats.tls.ca"] },
        Refusal {
            what: "a CA that did not sign the server's certificate",
            keys: format!("tls = {{ ca = {} }}", toml(&other_ca)),
            says: &["TLS", "UnknownIssuer", "nats.tls.ca"],
        },
    ];
    serves_and_refuses(nats.url(), &format!("tls = {{ ca = {} }}", toml(&ca_file)), client, &refusals).await;
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("switchyard test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let nats = server(&write(dir.path(), "mtls.conf", &tls_block(&ca.server(dir.path(), "server"), &ca_file, true)));
    // A plain `nats://` URL: the server's INFO says TLS is required, the host follows.
    let url = nats.url().replace("tls://", "nats://");

    let client_cert = ca.client(dir.path(), "switchyard");
    let untrusted = Ca::new("an unknown CA").client(dir.path(), "intruder");
    let keys = |cert: Option<&CertFiles>| match cert {
        Some(c) => format!("tls = {{ ca = {}, cert = {}, key = {}, required = true }}", toml(&ca_file), toml(&c.cert), toml(&c.key)),
        None => format!("tls = {{ ca = {}, required = true }}", toml(&ca_file)),
    };
    let client = ConnectOptions::new()
        .add_root_certificates(ca_file.clone())
        .add_client_certificate(client_cert.cert.clone(), client_cert.key.clone())
        .require_tls(true);
    let refusals = [
        Refusal { what: "a client certificate of another CA", keys: keys(Some(&untrusted)), says: &["TLS", "nats.tls.cert"] },
        Refusal { what: "no client certificate", keys: keys(None), says: &["TLS", "nats.tls.cert"] },
    ];
    serves_and_refuses(&url, &keys(Some(&client_cert)), client, &refusals).await;
}

#[tokio::test]
async fn token() {
    let nats = NatsServer::start_with_args(&["--auth", "t0ken-of-the-day"]);
    let client = ConnectOptions::new().token("t0ken-of-the-day".into());
    let refusals =
        [Refusal { what: "a wrong token", keys: "token = \"yesterdays-token\"".into(), says: &["authorization violation", "nats.token"] }];
    serves_and_refuses(nats.url(), "token = \"t0ken-of-the-day\"", client, &refusals).await;
}

#[tokio::test]
async fn user_and_password() {
    let nats = NatsServer::start_with_args(&["--user", "ops", "--pass", "s3cret"]);
    let client = ConnectOptions::new().user_and_password("ops".into(), "s3cret".into());
    let refusals = [Refusal {
        what: "a wrong password",
        keys: "user = \"ops\"\npassword = \"guess\"".into(),
        says: &["authorization violation", "nats.user", "nats.password"],
    }];
    serves_and_refuses(nats.url(), "user = \"ops\"\npassword = \"s3cret\"", client, &refusals).await;
}

#[tokio::test]
async fn nkey() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (public, seed) = user_nkey();
    let (_, unknown_seed) = user_nkey();
    let nats = server(&write(dir.path(), "nkey.conf", &format!("authorization {{\n  users = [ {{ nkey: {public} }} ]\n}}\n")));
    let client = ConnectOptions::new().nkey(seed.clone());
    let refusals = [
        Refusal {
            what: "an nkey the server does not know",
            keys: format!("nkey = \"{unknown_seed}\""),
            says: &["authorization violation", "nats.nkey"],
        },
        Refusal { what: "a seed that is not an nkey", keys: "nkey = \"SUNOTASEED\"".into(), says: &["nats.nkey", "not a valid nkey seed"] },
    ];
    let outputs = serves_and_refuses(nats.url(), &format!("nkey = \"{seed}\""), client, &refusals).await;
    // The seed is a secret: the error names the key, never its value.
    assert!(outputs.iter().all(|out| !out.contains(&unknown_seed)), "the seed must not be printed:\n{outputs:?}");
}

#[tokio::test]
async fn creds_file_in_operator_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let operator = Operator::new("switchyard-test-operator");
    let app = operator.account("APP", true);
    let nats = server(&operator.server_config(dir.path(), &[&app]));
    let creds = app.user_creds(dir.path(), "switchyard");
    // An account of the same operator that the server was never given.
    let stranger = operator.account("STRANGER", true).user_creds(dir.path(), "stranger");
    let forged = Operator::new("another-operator").account("APP", true).user_creds(dir.path(), "forged");
    let garbled = write(dir.path(), "garbled.creds", "this is not a creds file\n");

    let client = ConnectOptions::with_credentials_file(&creds).await.expect("read the .creds file");
    let refusals = [
        Refusal {
            what: "a user of an account the server does not know",
            keys: format!("credentials = {}", toml(&stranger)),
            says: &["authorization violation", "nats.credentials"],
        },
        Refusal {
            what: "a user of another operator",
            keys: format!("credentials = {}", toml(&forged)),
            says: &["authorization violation", "nats.credentials"],
        },
        Refusal {
            what: "a file that is not a .creds file",
            keys: format!("credentials = {}", toml(&garbled)),
            says: &["nats.credentials", "garbled.creds", "cannot parse"],
        },
    ];
    serves_and_refuses(nats.url(), &format!("credentials = {}", toml(&creds)), client, &refusals).await;
}
