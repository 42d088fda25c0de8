//! `switchyard dlq`: dead letters listed, shown, and replayed once the plugin
//! is fixed — handled and acked, the dead-letter stream left empty.
//!
//! A replay sends each letter back the way it came (JetStream publish, core
//! request, core publish to whoever listens) and removes only the letters whose
//! delivery was confirmed; the others stay, and the command fails.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::host::binary;
use switchyard_tests::js::{count, create_stream, drained, header, messages, publish_many, quiet};
use switchyard_tests::{Host, NatsServer, eventually, within};

const WAIT: Duration = Duration::from_secs(30);

/// The JOBS route of `faulty_jobs` plus a core route `core` on `core.>`, both
/// served by the faulty plugin.
const CORE_ROUTE: &str = "\n[[routes]]\nname = \"core\"\nplugin = \"faulty\"\nsubjects = [\"core.>\"]\n";

/// Run `switchyard dlq <args>`: whether it succeeded, and what it printed.
async fn dlq_run(url: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = tokio::process::Command::new(binary())
        .args(["dlq"])
        .args(args)
        .args(["--url", url])
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let output = within(WAIT, &format!("switchyard dlq {args:?}"), run).await.expect("run switchyard dlq");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// `switchyard dlq <args>`, which must succeed.
async fn dlq(url: &str, args: &[&str]) -> String {
    let (ok, text) = dlq_run(url, args).await;
    assert!(ok, "dlq {args:?} failed:\n{text}");
    text
}

/// `switchyard dlq <args>`, which must fail (some dead letter was kept).
async fn dlq_fails(url: &str, args: &[&str]) -> String {
    let (ok, text) = dlq_run(url, args).await;
    assert!(!ok, "dlq {args:?} should have failed:\n{text}");
    text
}

/// The replay line of dead letter `sequence`.
fn line_of(output: &str, sequence: u64) -> &str {
    output
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&sequence.to_string()))
        .unwrap_or_else(|| panic!("no line for dead letter {sequence} in:\n{output}"))
}

/// How a message that becomes a dead letter is first sent.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// A core publish to `core.…`.
    Publish,
    /// A core request to `core.…` (answered with error 500).
    Request,
    /// A JetStream publish to `jobs.…`.
    Job,
}

/// Make one dead letter per `(subject, how)`, in this order (dead-letter
/// sequences 1, 2, …), with a host whose plugin rejects everything; the host
/// is stopped before returning. Each payload is its subject.
async fn dead_letters(nats: &NatsServer, letters: &[(&str, Sent)]) {
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let broken = Host::start(&faulty_jobs(nats.url(), "config = { action = \"reject\" }", CORE_ROUTE)).await;
    for (n, (subject, how)) in letters.iter().enumerate() {
        let payload = subject.as_bytes().to_vec();
        match how {
            Sent::Publish => {
                client.publish(subject.to_string(), payload.into()).await.expect("publish");
                client.flush().await.expect("flush");
            }
            Sent::Request => {
                let reply = within(WAIT, "the error reply", client.request(subject.to_string(), payload.into())).await.expect("request");
                let code = reply.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code")).map(|v| v.as_str().to_owned());
                assert_eq!(code.as_deref(), Some("400"), "rejected (the requester's fault), dead-lettered");
            }
            Sent::Job => publish_many(&js, subject, 1, |_| payload.clone()).await,
        }
        let stored = n as u64 + 1;
        eventually(WAIT, &format!("dead letter {stored} ({subject})"), || async {
            (count(&js, "SWITCHYARD_DLQ").await == stored).then_some(())
        })
        .await;
    }
    broken.stop().await;
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

    let list = dlq(nats.url(), &["list"]).await;
    assert!(list.contains("5 dead letter(s)"), "{list}");
    assert!(list.contains("jobs.1") && list.contains("rejected by request"), "{list}");
    let only_one = dlq(nats.url(), &["list", "--subject", "jobs.1"]).await;
    assert!(only_one.contains("1 dead letter(s)"), "{only_one}");
    // Four workers reject concurrently: the letter of jobs.1 need not be sequence 1.
    let sequence = only_one.lines().find(|l| l.contains("jobs.1")).and_then(|l| l.split_whitespace().next()).expect("a jobs.1 line");
    let shown = dlq(nats.url(), &["show", sequence]).await;
    assert!(shown.contains("Switchyard-Route: jobs") && shown.contains("job-1"), "{shown}");
    // Headers by name, the same on every call.
    let names: Vec<&str> = shown.lines().skip(2).take_while(|l| !l.is_empty()).filter_map(|l| l.split(": ").next()).collect();
    assert!(names.len() > 3 && names.is_sorted(), "{shown}");
    assert_eq!(dlq(nats.url(), &["show", sequence]).await, shown);

    // Replay while no host runs, to look at what goes back.
    let one = dlq(nats.url(), &["replay", "--subject", "jobs.1"]).await;
    assert!(one.contains("replayed 1 of 1 dead letter(s); 0 kept"), "{one}");
    let replayed = messages(&js, "JOBS").await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(&replayed[0].payload[..], b"job-1", "payload intact");
    assert_eq!(replayed[0].headers.get("Switchyard-Replay").map(|v| v.as_str()), Some("SWITCHYARD_DLQ:1"));
    assert!(replayed[0].headers.get("Switchyard-Reason").is_none(), "dead-letter headers stripped");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 4);

    // The fixed release handles them all.
    create_stream(&js, "DONE", &["done.>"]).await;
    let fixed = Host::start(&faulty_jobs(nats.url(), "config = { publish = [\"done.x\"] }", "")).await;
    let four = dlq(nats.url(), &["replay", "--route", "jobs"]).await;
    assert!(four.contains("replayed 4 of 4 dead letter(s); 0 kept"), "{four}");
    eventually(WAIT, "all five handled", || async { (count(&js, "DONE").await == 5).then_some(()) }).await;
    drained(&js, "JOBS", "jobs").await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "the dead-letter stream is empty");
    assert!(dlq(nats.url(), &["list"]).await.contains("0 dead letter(s)"));
    fixed.stop().await;
}

/// A JetStream publish to a core route looks like a request to it; its reply
/// is no stream ack. The letters go back as core messages, each handled once.
#[tokio::test]
async fn core_letters_go_back_to_a_fixed_core_route_and_are_handled_once() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    dead_letters(&nats, &[("core.a", Sent::Publish), ("core.b", Sent::Request)]).await;

    create_stream(&js, "SEEN", &["seen.>"]).await;
    let fixed = Host::start(&faulty_jobs(nats.url(), "config = { publish = [\"seen.x\"] }", CORE_ROUTE)).await;
    let out = dlq(nats.url(), &["replay", "--route", "core"]).await;
    assert!(out.contains("replayed 2 of 2 dead letter(s); 0 kept"), "{out}");
    assert!(line_of(&out, 1).contains("core.a  replayed: delivered (a responder answered)"), "{out}");
    assert!(line_of(&out, 2).contains("core.b  replayed: delivered (a responder answered)"), "{out}");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "both letters removed");

    eventually(WAIT, "both handled", || async { (count(&js, "SEEN").await == 2).then_some(()) }).await;
    let again = dlq(nats.url(), &["replay"]).await;
    assert!(again.contains("replayed 0 of 0 dead letter(s); 0 kept"), "{again}");
    let mut seen: Vec<_> = messages(&js, "SEEN").await.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect();
    // Replays run concurrently: the order they were handled in is not fixed.
    seen.sort();
    assert_eq!(seen, ["core.a", "core.b"], "each handled exactly once");
    fixed.stop().await;
}

/// A route that rejects the message again answers 400 after storing a new dead
/// letter: the old one goes, the new one says which letter it replays.
#[tokio::test]
async fn a_letter_the_route_fails_again_is_replaced_by_its_new_dead_letter() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    dead_letters(&nats, &[("core.b", Sent::Request)]).await;
    let still_broken = Host::start(&faulty_jobs(nats.url(), "config = { action = \"reject\" }", CORE_ROUTE)).await;

    let out = dlq(nats.url(), &["replay"]).await;
    let line = line_of(&out, 1);
    assert!(line.contains("core.b  replayed: delivered, error reply 400 `rejected by request`: the route dead-lettered it again"), "{out}");
    assert!(out.contains("replayed 1 of 1 dead letter(s); 0 kept"), "{out}");
    let left = messages(&js, "SWITCHYARD_DLQ").await;
    assert_eq!(left.iter().map(|m| m.sequence).collect::<Vec<_>>(), [2], "the old letter replaced by the new one");
    assert_eq!(header(&left[0], "Switchyard-Replay"), "SWITCHYARD_DLQ:1");
    assert_eq!(header(&left[0], "Switchyard-Request"), "true");
    still_broken.stop().await;
}

#[tokio::test]
async fn a_core_letter_is_delivered_to_a_subscriber_that_does_not_reply() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    dead_letters(&nats, &[("core.s", Sent::Publish)]).await;
    let mut listener = client.subscribe("core.s").await.expect("subscribe");
    client.flush().await.expect("flush");

    let out = dlq(nats.url(), &["replay", "--timeout", "500ms"]).await;
    assert!(line_of(&out, 1).contains("core.s  replayed: delivered (a subscriber, no reply)"), "{out}");
    assert!(out.contains("replayed 1 of 1 dead letter(s); 0 kept"), "{out}");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "the letter is removed");
    let got = within(WAIT, "the replayed message", listener.next()).await.expect("a message");
    assert_eq!(&got.payload[..], b"core.s", "payload intact");
    let headers = got.headers.expect("headers");
    assert_eq!(headers.get("Switchyard-Replay").map(|v| v.as_str()), Some("SWITCHYARD_DLQ:1"));
    assert!(headers.get("Switchyard-Reason").is_none(), "dead-letter headers stripped");
}

#[tokio::test]
async fn a_core_letter_nobody_receives_is_kept() {
    let nats = NatsServer::start();
    let js = jetstream::new(nats.client().await);
    dead_letters(&nats, &[("core.p", Sent::Publish), ("core.r", Sent::Request)]).await;

    let out = dlq_fails(nats.url(), &["replay"]).await;
    assert!(line_of(&out, 1).contains("core.p  kept: nobody listens on `core.p`"), "{out}");
    assert!(line_of(&out, 2).contains("core.r  kept: nobody listens on `core.r`"), "{out}");
    assert!(out.contains("replayed 0 of 2 dead letter(s); 2 kept"), "{out}");
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 2, "both letters kept");
    assert!(!dlq(nats.url(), &["show", "1"]).await.contains("Switchyard-Request"), "a publish is no request");
    assert!(dlq(nats.url(), &["show", "2"]).await.contains("Switchyard-Request: true"));
}

#[tokio::test]
async fn a_failure_in_the_middle_does_not_stop_the_others() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    let letters = [("core.a", Sent::Publish), ("jobs.1", Sent::Job), ("core.nobody", Sent::Publish), ("core.c", Sent::Request)];
    dead_letters(&nats, &letters).await;
    // The stream the job came from is gone: nothing captures `jobs.1` now.
    js.delete_stream("JOBS").await.expect("delete JOBS");
    let mut answered = responder(&client, "core.a").await;
    let mut answered_c = responder(&client, "core.c").await;

    let out = dlq_fails(nats.url(), &["replay"]).await;
    assert!(line_of(&out, 1).contains("core.a  replayed: delivered (a responder answered)"), "{out}");
    assert!(line_of(&out, 2).contains("jobs.1  kept: no stream captures `jobs.1` any more"), "{out}");
    assert!(line_of(&out, 3).contains("core.nobody  kept: nobody listens on `core.nobody`"), "{out}");
    assert!(line_of(&out, 4).contains("core.c  replayed: delivered (a responder answered)"), "{out}");
    let order: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u64>().is_ok()).collect();
    assert_eq!(order, ["1", "2", "3", "4"], "one line per letter, in sequence order:\n{out}");
    assert!(out.contains("replayed 2 of 4 dead letter(s); 2 kept"), "{out}");

    let left: Vec<u64> = messages(&js, "SWITCHYARD_DLQ").await.iter().map(|m| m.sequence).collect();
    assert_eq!(left, [2, 3], "only the failed letters stay");
    assert_eq!(header(&messages(&js, "SWITCHYARD_DLQ").await[0], "Switchyard-Stream"), "JOBS");
    assert_eq!(within(WAIT, "core.a answered", answered.recv()).await.as_deref(), Some("core.a"));
    assert_eq!(within(WAIT, "core.c answered", answered_c.recv()).await.as_deref(), Some("core.c"));
}

/// Answer every message on `subject` with "ok"; the payloads seen come out of
/// the returned channel.
async fn responder(client: &async_nats::Client, subject: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let mut sub = client.subscribe(subject.to_owned()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply.clone() {
                let _ = client.publish(reply, "ok".into()).await;
            }
            let _ = tx.send(String::from_utf8_lossy(&msg.payload).into_owned());
        }
    });
    rx
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let nats = NatsServer::start();
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    dead_letters(&nats, &[("core.d", Sent::Publish), ("jobs.1", Sent::Job), ("core.r", Sent::Request)]).await;
    let mut core = client.subscribe("core.>").await.expect("subscribe");
    client.flush().await.expect("flush");

    let out = dlq(nats.url(), &["replay", "--dry-run"]).await;
    assert!(line_of(&out, 1).contains("core.d  would send to `core.d` when anyone listens there"), "{out}");
    assert!(line_of(&out, 2).contains("jobs.1  would publish to `jobs.1` on jetstream"), "{out}");
    assert!(line_of(&out, 3).contains("core.r  would send a request to `core.r`"), "{out}");
    assert!(out.contains("dry run: would replay 3 of 3 dead letter(s); nothing changed"), "{out}");

    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 3, "every letter kept");
    assert_eq!(count(&js, "JOBS").await, 0, "nothing published to the stream");
    // The command has exited; anything it sent would already be on its way.
    assert!(quiet(&mut core, Duration::from_millis(200)).await.is_empty(), "nothing sent to the core subjects");
}
