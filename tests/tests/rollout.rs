//! Rollouts on live traffic: a canary that fails is rolled back at its first
//! step with nothing lost or dead-lettered; a good canary climbs every step
//! with each key's messages in order; a shadow's differences are shown, what
//! it produced never reaches NATS (nor a key-value bucket), and promote makes
//! it current.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use switchyard_tests::configs::faulty_jobs_at;
use switchyard_tests::host::binary;
use switchyard_tests::js::{count, create_stream, header, messages, pending, publish_many};
use switchyard_tests::modules::{replace_file, with_custom_section};
use switchyard_tests::{Host, NatsServer, eventually, plugin, within};

const WAIT: Duration = Duration::from_secs(120);

/// runtime.toml for a host whose faulty plugin lives at `dir/faulty.wasm`,
/// reloaded only when asked; `routes` follow the `jobs` route's settings.
fn config(url: &str, dir: &Path, plugin_config: &str, rollout: &str, routes: &str) -> String {
    let plugin = format!("rollout = {{ {rollout} }}\nconfig = {{ publish = [\"done.x\"], {plugin_config} }}");
    faulty_jobs_at(url, &dir.join("faulty.wasm"), &plugin, routes).replacen("[host]\n", "[host]\nwatch = false\n", 1)
}

/// The `jobs` route's settings.
const JOBS_ROUTE: &str = r#"concurrency = 4
max_deliver = 5
retry = { delays = ["100ms"] }
"#;

/// Put version 2 in place (a new file and a new config) and have the host load it.
async fn deploy_v2(host: &Host, client: &async_nats::Client, config: &str) {
    let wasm = host.dir().join("faulty.wasm");
    let original = std::fs::read(plugin("faulty")).expect("read faulty.wasm");
    replace_file(&wasm, &with_custom_section(&original, "version", b"2"));
    replace_file(&host.dir().join("runtime.toml"), config.as_bytes());
    let answer = within(WAIT, "a reload report", client.request("switchyard.control.reload", "".into())).await.expect("reload");
    let report: serde_json::Value = serde_json::from_slice(&answer.payload).expect("report json");
    assert!(report["changes"].to_string().contains("plugin `faulty`: version"), "{report}");
}

/// A host on `faulty` version 1, in its own folder.
async fn start_v1(nats: &NatsServer, plugin_config: &str, routes: &str) -> Host {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(plugin("faulty"), dir.path().join("faulty.wasm")).expect("copy plugin");
    let text = config(nats.url(), dir.path(), plugin_config, "", routes);
    Host::start_in(dir, &text).await
}

/// The host's answer to `switchyard rollout <action> <plugin>`, as JSON.
async fn ask_rollout(client: &async_nats::Client, action: &str, plugin: &str) -> serde_json::Value {
    let body = serde_json::json!({ "action": action, "plugin": plugin }).to_string();
    let answer = within(WAIT, "a rollout answer", client.request("switchyard.control.rollout", body.into())).await.expect("rollout");
    serde_json::from_slice(&answer.payload).expect("rollout json")
}

/// `switchyard rollout <action> faulty`, as JSON.
async fn rollout(client: &async_nats::Client, action: &str) -> serde_json::Value {
    ask_rollout(client, action, "faulty").await
}

/// Run the CLI; its success and its output.
async fn switchyard(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(binary()).args(args).kill_on_drop(true).output();
    let output = within(Duration::from_secs(20), "the switchyard command", output).await.expect("run switchyard");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_at_its_first_step_and_loses_nothing() {
    const TOTAL: usize = 3000;
    let nats = NatsServer::start();
    let host = start_v1(&nats, r#"tag = "v1""#, JOBS_ROUTE).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;

    // Version 2 fails 30 % of messages.
    let policy = r#"strategy = "canary", steps = [1, 10, 50, 100], step_for = "1m", messages = 10"#;
    let v2 = config(nats.url(), host.dir(), r#"tag = "v2", fail_percent = 30"#, policy, JOBS_ROUTE);
    deploy_v2(&host, &client, &v2).await;
    let status = rollout(&client, "status").await;
    assert_eq!(status["routes"][0]["trial"]["share_percent"], 1, "{status}");

    publish_many(&js, "jobs.n", TOTAL, |i| format!(r#"{{"n":{i}}}"#).into_bytes()).await;
    eventually(WAIT, "every message handled", || async { (count(&js, "DONE").await == TOTAL as u64).then_some(()) }).await;
    eventually(WAIT, "nothing pending", || async { (pending(&js, "JOBS", "jobs").await == (0, 0)).then_some(()) }).await;
    assert_eq!(count(&js, "SWITCHYARD_DLQ").await, 0, "a canary dead-letters nothing");

    let status = rollout(&client, "status").await;
    let route = &status["routes"][0];
    assert!(route["trial"].is_null(), "the canary ended: {status}");
    let last = route["last"].as_str().unwrap_or_default();
    assert!(last.contains("rolled back") && last.contains("at 1 %"), "rolled back at the first step: {last}");
    // "<failed> of <seen> messages failed on the new version at 1 % …"
    let seen: usize = last.split(" of ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse().ok()).expect("seen");
    assert!(seen * 50 <= TOTAL, "at most 2 % of messages saw the canary: {seen} of {TOTAL}");
    let handled_by_v2 = messages(&js, "DONE").await.iter().filter(|m| header(m, "faulty-tag") == "v2").count();
    assert!(handled_by_v2 <= seen, "{handled_by_v2} handled by v2, {seen} seen");
    eprintln!("canary rolled back: {last}; {handled_by_v2} of {TOTAL} messages handled by it");
    assert_eq!(route["current"], status["routes"][0]["current"]);
    let (_, output) = host.stop().await;
    assert!(output.contains("rolled back"), "{output}");
}

#[tokio::test]
async fn a_good_canary_climbs_every_step_and_keeps_each_keys_messages_in_order() {
    const KEYS: usize = 40;
    let nats = NatsServer::start();
    let route = format!("{JOBS_ROUTE}order_by = {{ subject_token = 2 }}\n");
    let host = start_v1(&nats, r#"tag = "v1""#, &route).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());
    create_stream(&js, "DONE", &["done.>"]).await;

    let policy =
        r#"strategy = "canary", steps = [10, 50, 100], step_for = "1s", step_messages = 20, messages = 10, max_latency_ratio = 5.0"#;
    let v2 = config(nats.url(), host.dir(), r#"tag = "v2""#, policy, &route);
    deploy_v2(&host, &client, &v2).await;

    // Rounds of one message per key, until the canary is accepted and a round after.
    let mut rounds = 0;
    let accepted = within(WAIT, "the canary accepted", async {
        loop {
            let load = js.clone();
            let acks: Vec<_> = futures::future::join_all((0..KEYS).map(|key| {
                let load = load.clone();
                async move { load.publish(format!("jobs.k{key}"), format!(r#"{{"key":{key},"seq":{rounds}}}"#).into()).await }
            }))
            .await;
            for ack in acks {
                within(WAIT, "a stream ack", ack.expect("publish").into_future()).await.expect("stored");
            }
            rounds += 1;
            let status = rollout(&client, "status").await;
            if let Some(last) = status["routes"][0]["last"].as_str() {
                break last.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(accepted.contains("accepted"), "{accepted}");
    let total = (rounds * KEYS) as u64;
    eventually(WAIT, "every message handled", || async { (count(&js, "DONE").await == total).then_some(()) }).await;

    // Per key: the rounds in order, and once on version 2, never back on 1.
    let mut by_key: Vec<Vec<(u64, String)>> = vec![Vec::new(); KEYS];
    for msg in messages(&js, "DONE").await {
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        let key = body["key"].as_u64().expect("key") as usize;
        by_key[key].push((body["seq"].as_u64().expect("seq"), header(&msg, "faulty-tag").to_owned()));
    }
    for (key, handled) in by_key.iter().enumerate() {
        let seqs: Vec<u64> = handled.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (0..rounds as u64).collect::<Vec<_>>(), "key {key}: every round, in order");
        let first_v2 = handled.iter().position(|(_, tag)| tag == "v2").unwrap_or(handled.len());
        assert!(handled[first_v2..].iter().all(|(_, tag)| tag == "v2"), "key {key} went back to v1: {handled:?}");
    }
    eprintln!("canary accepted after {rounds} rounds of {KEYS} keys: {accepted}");
    let moved_early = by_key.iter().filter(|handled| handled.first().is_some_and(|(_, tag)| tag == "v2")).count();
    assert!(moved_early < KEYS, "at 10 % not every key moved at once");
    let (_, output) = host.stop().await;
    for line in ["now takes 50 % of messages", "now takes 100 % of messages", "new version accepted after its canary"] {
        assert!(output.contains(line), "missing `{line}`:\n{output}");
    }
}

#[tokio::test]
async fn a_shadow_shows_what_it_would_change_sends_nothing_and_is_promoted() {
    const REQUESTS: usize = 20;
    let nats = NatsServer::start();
    let routes = "\n[[routes]]\nname = \"ask\"\nplugin = \"faulty\"\nsubjects = [\"ask.*\"]\nconcurrency = 2\n";
    let host = start_v1(&nats, r#"tag = "v1", action = "reply", set = { status = "old" }"#, routes).await;
    let client = nats.client().await;

    // Everything on every subject that carries version 2's output.
    let mut all = client.subscribe(">").await.expect("subscribe");
    let from_v2 = Arc::new(AtomicUsize::new(0));
    let counted = from_v2.clone();
    tokio::spawn(async move {
        while let Some(msg) = all.next().await {
            let tag = msg.headers.as_ref().and_then(|h| h.get("faulty-tag")).map(|v| v.to_string());
            if tag.as_deref() == Some("v2") || String::from_utf8_lossy(&msg.payload).contains(r#""status":"new""#) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    let rollout_config = r#"strategy = "shadow", sample = 1.0, keep_diffs = 5"#;
    let v2 = config(nats.url(), host.dir(), r#"tag = "v2", action = "reply", set = { status = "new" }"#, rollout_config, routes);
    deploy_v2(&host, &client, &v2).await;

    for i in 0..REQUESTS {
        let answer = within(WAIT, "a reply", client.request("ask.x", format!(r#"{{"n":{i}}}"#).into())).await.expect("request");
        let body: serde_json::Value = serde_json::from_slice(&answer.payload).expect("json reply");
        assert_eq!(body["status"], "old", "the current version answers");
    }
    let status = eventually(WAIT, "every request compared", || async {
        let status = rollout(&client, "status").await;
        let shadow = &status["routes"][0]["trial"]["shadow"];
        (shadow["different"].as_u64().unwrap_or(0) + shadow["dropped"].as_u64().unwrap_or(0) == REQUESTS as u64).then_some(status)
    })
    .await;
    let shadow = &status["routes"][0]["trial"]["shadow"];
    eprintln!("shadow: {shadow}");
    assert!(shadow["different"].as_u64() > Some(0) && shadow["same"] == 0, "{status}");
    client.flush().await.expect("flush");
    within(WAIT, "a round trip", client.request("switchyard.control.status", "".into())).await.expect("status");
    assert_eq!(from_v2.load(Ordering::SeqCst), 0, "nothing the shadow produced reached NATS");

    let url = nats.url();
    let (ok, out) = switchyard(&["rollout", "diff", "faulty", "--url", url]).await;
    assert!(ok, "{out}");
    assert!(out.contains(r#"publish[0] done.x: $.status: "old" -> "new""#), "the changed field, by path:\n{out}");
    assert!(out.contains(r#"reply: $.status: "old" -> "new""#), "{out}");
    let (ok, out) = switchyard(&["rollout", "status", "faulty", "--url", url]).await;
    assert!(ok && out.contains("(shadow)") && out.contains("same 0"), "{out}");
    let (ok, out) = switchyard(&["rollout", "promote", "faulty", "--url", url]).await;
    assert!(ok && out.contains("promoted"), "{out}");

    let answer = within(WAIT, "a reply", client.request("ask.x", r#"{"n":99}"#.into())).await.expect("request");
    let body: serde_json::Value = serde_json::from_slice(&answer.payload).expect("json reply");
    assert_eq!(body["status"], "new", "the promoted version answers");
    let (ok, out) = switchyard(&["rollout", "abort", "faulty", "--url", url]).await;
    assert!(!ok && out.contains("nothing done: no version of `faulty` is on trial"), "{out}");
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}

/// A shadow may read a bucket but not write it: its writes answer
/// `unavailable` (and so differ), and each key holds the current version's
/// write only.
#[tokio::test]
async fn a_shadow_writes_nothing_to_a_bucket() {
    const REQUESTS: usize = 10;
    let nats = NatsServer::start();
    let routes = "\n[[routes]]\nname = \"ask\"\nplugin = \"faulty\"\nsubjects = [\"ask.*\"]\n\n[[buckets]]\nname = \"SEEN\"\nhistory = 5\n";
    let with_kv = |text: String| text.replacen("[plugins.faulty]\n", "[plugins.faulty]\nkv = [\"SEEN\"]\n", 1);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(plugin("faulty"), dir.path().join("faulty.wasm")).expect("copy plugin");
    let v1 = with_kv(config(nats.url(), dir.path(), "", "", routes));
    let host = Host::start_in(dir, &v1).await;
    let client = nats.client().await;
    let v2 = with_kv(config(nats.url(), host.dir(), "", r#"strategy = "shadow", sample = 1.0"#, routes));
    deploy_v2(&host, &client, &v2).await;

    for i in 0..REQUESTS {
        let put = serde_json::json!({"action": "reply", "kv": [{"op": "put", "bucket": "SEEN", "key": format!("k-{i}"), "value": "v"}]});
        let answer = within(WAIT, "a reply", client.request("ask.x", put.to_string().into())).await.expect("request");
        let body: serde_json::Value = serde_json::from_slice(&answer.payload).expect("json reply");
        assert_eq!(body, serde_json::json!([{"revision": i + 1}]), "the current version writes");
    }
    let status = eventually(WAIT, "every request compared", || async {
        let status = rollout(&client, "status").await;
        let shadow = &status["routes"][0]["trial"]["shadow"];
        (shadow["different"].as_u64().unwrap_or(0) + shadow["dropped"].as_u64().unwrap_or(0) == REQUESTS as u64).then_some(status)
    })
    .await;
    assert!(status["routes"][0]["trial"]["shadow"]["different"].as_u64() > Some(0), "{status}");
    let js = jetstream::new(client.clone());
    assert_eq!(count(&js, "KV_SEEN").await, REQUESTS as u64, "one write per key: none from the shadow");
    let (status, output) = host.stop().await;
    assert!(status.success(), "{output}");
}

#[tokio::test]
async fn rollout_settings_out_of_range_are_each_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(plugin("faulty"), dir.path().join("faulty.wasm")).expect("copy plugin");
    let bad = r#"strategy = "canary", steps = [50, 10], sample = 0.0, max_latency_ratio = 0.5"#;
    let text = config("nats://127.0.0.1:4222", dir.path(), "", bad, "");
    let file = dir.path().join("runtime.toml");
    std::fs::write(&file, text).expect("write config");
    let (ok, out) = switchyard(&["check", file.to_str().expect("utf-8")]).await;
    assert!(!ok, "{out}");
    for problem in ["`rollout.steps` must be percentages", "`rollout.sample` must be", "`rollout.max_latency_ratio` must be at least 1.0"] {
        assert!(out.contains(problem), "missing `{problem}`:\n{out}");
    }
}

#[tokio::test]
async fn a_deployed_version_runs_as_a_shadow_on_every_host_until_promoted() {
    let nats = NatsServer::start();
    let url = nats.url();
    let deploy = |module: &str| {
        let module = plugin(module).display().to_string();
        async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let run = tokio::process::Command::new(binary())
                .args(["deploy", "greeter", &module, "--url", url, "--timeout", "30s"])
                .current_dir(dir.path())
                .output();
            let output = within(WAIT, "deploy", run).await.expect("run deploy");
            (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
        }
    };
    let (ok, out) = deploy("noop").await;
    assert!(ok, "{out}");
    let config = format!(
        "[nats]\nurl = \"{url}\"\n\n[host]\ncache_dir = \".switchyard/cache\"\n\n[plugins.greeter]\nsource = \"object:SWITCHYARD_PLUGINS/greeter\"\nrollout = {{ strategy = \"shadow\" }}\n\n[[routes]]\nname = \"greet\"\nplugin = \"greeter\"\nsubjects = [\"greet.>\"]\nqueue = \"greeters\"\n"
    );
    let hosts = [Host::start(&config).await, Host::start(&config).await];
    let client = nats.client().await;

    // `echo` replies with the payload and an `echoed-by` header; `noop` replies bare.
    let (ok, out) = deploy("echo").await;
    assert!(ok && out.contains("trying greeter") && out.contains("as a shadow"), "{out}");
    let ask = || async {
        let reply = within(WAIT, "a reply", client.request("greet.x", "hi".into())).await.expect("request");
        reply.headers.as_ref().and_then(|h| h.get("echoed-by")).is_some()
    };
    for _ in 0..20 {
        assert!(!ask().await, "the current version (noop) answers while echo is a shadow");
    }
    let (ok, out) = switchyard(&["rollout", "status", "greeter", "--url", url]).await;
    assert!(ok && out.matches("(shadow)").count() == 2, "a shadow on each host:\n{out}");
    eventually(WAIT, "every request compared on its host", || async {
        let (_, out) = switchyard(&["rollout", "status", "greeter", "--url", url, "--json"]).await;
        let answers: serde_json::Value = serde_json::from_str(&out).ok()?;
        let different = |answer: &serde_json::Value| answer["routes"][0]["trial"]["shadow"]["different"].as_u64().unwrap_or(0);
        (answers.as_array()?.iter().map(different).sum::<u64>() == 20).then_some(())
    })
    .await;
    let (ok, out) = switchyard(&["rollout", "diff", "greeter", "--url", url]).await;
    assert!(ok && out.contains("reply headers: [] -> [echoed-by: echo]"), "{out}");
    let (ok, out) = switchyard(&["rollout", "promote", "greeter", "--url", url]).await;
    assert!(ok && out.matches("promoted").count() == 2, "promoted on every host:\n{out}");
    for _ in 0..10 {
        assert!(ask().await, "the promoted version (echo) answers, whichever host takes the request");
    }
    for host in hosts {
        let (status, output) = host.stop().await;
        assert!(status.success(), "{output}");
    }
}
