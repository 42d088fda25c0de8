//! `switchyard dlq`: dead letters listed, shown, and replayed once the plugin
//! is fixed — handled and acked, the dead-letter stream left empty.

use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::host::binary;
use switchyard_tests::js::{count, create_stream, drained, messages, publish_many};
use switchyard_tests::{Host, NatsServer, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn dlq(url: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(binary())
        .args(["dlq"])
        .args(args)
        .args(["--url", url])
        .current_dir(dir.path())
        .output()
        .expect("run switchyard dlq");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dlq {args:?} failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_after_the_fix() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);

    // A broken release: every job is rejected.
    let broken = Host::start(&faulty_jobs(nats.url(), "config = { action = \"reject\" }", "")).await;
    publish_many(&js, "jobs.1", 1, |_| b"job-1".to_vec()).await;
    publish_many(&js, "jobs.2", 4, |i| format!("job-2-{i}").into_bytes()).await;
    eventually(WAIT, "five dead letters", || async { (count(&js, "SWITCHYARD_DLQ").await == 5).then_some(()) }).await;
    broken.stop().await;

    let list = dlq(nats.url(), &["list"]);
    assert!(list.contains("5 dead letter(s)"), "{list}");
    assert!(list.contains("jobs.1") && list.contains("rejected by request"), "{list}");
    let only_one = dlq(nats.url(), &["list", "--subject", "jobs.1"]);
    assert!(only_one.contains("1 dead letter(s)"), "{only_one}");
    let shown = dlq(nats.url(), &["show", "1"]);
    assert!(shown.contains("Switchyard-Route: jobs") && shown.contains("job-1"), "{shown}");

    // Replay while no host runs, to look at what goes back.
    assert!(dlq(nats.url(), &["replay", "--subject", "jobs.1"]).contains("replayed 1 dead letter(s)"));
    let replayed = messages(&js, "JOBS").await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(&replayed[0].payload[..], b"job-1", "payload intact");
    assert_eq!(replayed[0].headers.get("Switchyard-Replay").map(|v| v.as_str()), Some("SWITCHYARD_DLQ:1"));
    assert!(replayed[0].headers.get("Switchyard-Reason").is_none(), "dead-letter headers stripped");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 4);

    // The fixed release handles them all.
    create_stream(&js, "DONE", &["done.>"]).await;
    let fixed = Host::start(&faulty_jobs(nats.url(), "config = { publish = [\"done.x\"] }", "")).await;
    assert!(dlq(nats.url(), &["replay", "--route", "jobs"]).contains("replayed 4 dead letter(s)"));
    eventually(WAIT, "all five handled", || async { (count(&js, "DONE").await == 5).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "the dead-letter stream is empty");
    assert!(dlq(nats.url(), &["list"]).contains("0 dead letter(s)"));
    fixed.stop().await;
}
