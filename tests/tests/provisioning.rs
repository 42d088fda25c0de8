//! What a host does with shared NATS state at start: it creates what is
//! missing, refuses to rewrite a stream or consumer whose settings differ
//! (naming each field) unless told to, waits for a NATS that is not up yet,
//! and reaches a server through a list of URLs whose first entry is down.

use std::time::Duration;

use async_nats::jetstream;
use switchyard_tests::cluster::free_port;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::host::preamble;
use switchyard_tests::js::{count, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const START: Duration = Duration::from_secs(60);

/// An ORDERS work-queue stream and nothing consuming it; `extra` is added to
/// the stream's table.
fn orders(url: &str, extra: &str) -> String {
    format!("{}[[streams]]\nname = \"ORDERS\"\nsubjects = [\"orders.>\"]\nretention = \"workqueue\"\n{extra}\n", preamble(url))
}

#[tokio::test]
async fn a_stream_with_other_settings_is_refused_and_its_messages_kept() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    let first = Host::start(&orders(nats.url(), "")).await;
    publish_many(&js, "orders.new", 200, |i| format!("order {i}").into_bytes()).await;

    // A second host whose entry would cut the stream to 10 messages.
    let (status, output) = Host::start_failing(&orders(nats.url(), "max_msgs = 10"), START).await;
    assert!(!status.success(), "the host must refuse to start:\n{output}");
    assert!(output.contains("stream `ORDERS` exists with other settings"), "{output}");
    assert!(output.contains("`max_msgs` is unlimited on the server, 10"), "{output}");
    assert!(output.contains("cannot be applied without losing data"), "{output}");
    assert_eq!(count(&js, "ORDERS").await, 200, "no message deleted");

    // Other subjects, without `update = true`: refused, naming the field.
    let other = format!(
        "{}[[streams]]\nname = \"ORDERS\"\nsubjects = [\"orders.>\", \"refunds.>\"]\nretention = \"workqueue\"\n",
        preamble(nats.url())
    );
    let (status, output) = Host::start_failing(&other, START).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("`subjects` is [`orders.>`] on the server, [`orders.>`, `refunds.>`]"), "{output}");
    assert!(output.contains("set `update = true` on the stream"), "{output}");
    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").config.subjects, vec!["orders.>".to_owned()], "subjects unchanged");
    first.stop().await;
}

#[tokio::test]
async fn update_true_applies_the_changes_that_lose_nothing_and_logs_them() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    let first = Host::start(&orders(nats.url(), "max_msgs = 1000")).await;
    publish_many(&js, "orders.new", 50, |i| format!("order {i}").into_bytes()).await;
    first.stop().await;

    let wider = format!(
        "{}[[streams]]\nname = \"ORDERS\"\nsubjects = [\"orders.>\", \"refunds.>\"]\nretention = \"workqueue\"\nmax_msgs = 5000\nupdate = true\n",
        preamble(nats.url())
    );
    let second = Host::start(&wider).await;
    let (_, output) = second.stop().await;
    assert!(output.contains("changing `subjects`") && output.contains("changing `max_msgs` from 1000 to 5000"), "{output}");
    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.max_messages, 5000);
    assert_eq!(config.subjects.len(), 2);
    assert_eq!(count(&js, "ORDERS").await, 50);

    // Lowering a limit loses messages: refused even with `update = true`.
    let (status, output) = Host::start_failing(&orders(nats.url(), "max_msgs = 10\nupdate = true"), START).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("`max_msgs`: messages over the new limit would be deleted"), "{output}");
    assert_eq!(count(&js, "ORDERS").await, 50);
}

#[tokio::test]
async fn a_dead_letter_stream_with_other_settings_is_refused() {
    let nats = NatsServer::start();
    let first = Host::start(&preamble(nats.url())).await;
    first.stop().await;
    let shorter = format!("{}[dead_letter]\nmax_age = \"1h\"\n", preamble(nats.url()));
    let (status, output) = Host::start_failing(&shorter, START).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("dead-letter stream `SWITCHYARD_DLQ` exists with other settings"), "{output}");
    assert!(output.contains("`max_age` is `7days` on the server, `1h`"), "{output}");
    // Told to, a longer retention is applied.
    let longer = format!("{}[dead_letter]\nmax_age = \"30days\"\nupdate = true\n", preamble(nats.url()));
    Host::start(&longer).await.stop().await;
    let js = jetstream::new(nats.client().await);
    let mut dlq = js.get_stream("SWITCHYARD_DLQ").await.expect("dead-letter stream");
    assert_eq!(dlq.info().await.expect("info").config.max_age, Duration::from_secs(30 * 24 * 3600));
}

#[tokio::test]
async fn a_consumer_with_other_settings_is_refused_unless_the_route_opts_in() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    let first = Host::start(&faulty_jobs(nats.url(), "", "ack_wait = \"30s\"")).await;
    first.stop().await;

    let (status, output) = Host::start_failing(&faulty_jobs(nats.url(), "", "ack_wait = \"5s\"\nmax_ack_pending = 50"), START).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("consumer `jobs` on stream `JOBS` exists with other settings"), "{output}");
    assert!(output.contains("`ack_wait` is `30s` on the server, `5s`"), "{output}");
    assert!(output.contains("`max_ack_pending` is 10000 on the server, 50"), "{output}");
    let consumer = js.get_stream("JOBS").await.expect("stream").consumer_info("jobs").await.expect("consumer");
    assert_eq!(consumer.config.ack_wait, Duration::from_secs(30), "unchanged");

    let opted_in = faulty_jobs(nats.url(), "", "ack_wait = \"5s\"\nupdate_consumer = true");
    let (_, output) = Host::start(&opted_in).await.stop().await;
    assert!(output.contains("changing `ack_wait`"), "{output}");
    let consumer = js.get_stream("JOBS").await.expect("stream").consumer_info("jobs").await.expect("consumer");
    assert_eq!(consumer.config.ack_wait, Duration::from_secs(5));
}

/// `nats.url` as a comma-separated list and as an array, the first entry down:
/// the host and the client verbs use the next one.
#[tokio::test]
async fn a_server_list_whose_first_server_is_down_still_connects() {
    let nats = NatsServer::start();
    let down = format!("nats://127.0.0.1:{}", free_port());
    for url in [format!("{down},{}", nats.url()), format!("[\"{down}\", \"{}\"]", nats.url())] {
        let listed = if url.starts_with('[') { url.clone() } else { format!("\"{url}\"") };
        let config = format!(
            "[nats]\nurl = {listed}\n\n[plugins.echo]\npath = \"{}\"\n\n[[routes]]\nname = \"greet\"\nplugin = \"echo\"\nsubjects = [\"greet.>\"]\n",
            plugin("echo").display()
        );
        let host = Host::start(&config).await;
        let client = nats.client().await;
        let reply = within(Duration::from_secs(10), "a reply", client.request("greet.x", "hi".into())).await.expect("request");
        assert_eq!(&reply.payload[..], b"hi");
        // The CLI takes the same list.
        let cli = std::process::Command::new(switchyard_tests::host::binary())
            .args(["req", "greet.cli", "hello", "--url", &format!("{down},{}", nats.url())])
            .output()
            .expect("switchyard req");
        assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
        assert!(String::from_utf8_lossy(&cli.stdout).contains("hello"));
        host.stop().await;
    }
}

/// A host started before NATS waits for it, saying so, and serves once it is up.
#[tokio::test]
async fn a_host_started_before_nats_waits_for_it() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let config = faulty_jobs(&url, "", "");
    let starting = tokio::spawn(async move { Host::start(&config).await });
    // Give the host time to fail to connect at least once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!starting.is_finished(), "the host must wait, not exit");
    let nats = NatsServer::start_on(port);
    let host = within(START, "the host to become ready once NATS is up", starting).await.expect("host task");
    let output = host.output();
    assert!(output.contains("connecting to NATS at") && output.contains("retrying in"), "{output}");
    let js = jetstream::new(nats.client().await);
    publish_many(&js, "jobs.1", 1, |_| b"{}".to_vec()).await;
    eventually(Duration::from_secs(20), "the job handled", || async { (count(&js, "JOBS").await == 0).then_some(()) }).await;
    host.stop().await;
}

/// With nothing to connect to, the wait is bounded by `nats.startup_timeout`.
#[tokio::test]
async fn startup_gives_up_after_the_startup_timeout() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let config = format!("[nats]\nurl = \"{url}\"\nstartup_timeout = \"2s\"\n");
    let (status, output) = Host::start_failing(&config, Duration::from_secs(20)).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("gave up after") && output.contains("nats.startup_timeout"), "{output}");
}
