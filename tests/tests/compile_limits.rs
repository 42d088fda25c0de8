//! A compile bomb (a module that takes cranelift tens of seconds and hundreds of
//! MB) against the host: it is stopped at `host.max_compile_time`, the other
//! routes serve meanwhile, and the host keeps none of the compiler's memory.
//! Oversized modules are refused before compiling.

use std::time::{Duration, Instant};

use switchyard_tests::host::{binary, preamble};
use switchyard_tests::{Host, NatsServer, modules, plugin, within};

const BOMB_FUNCTIONS: usize = 100_000;

fn config(url: &str, bomb: &std::path::Path, host_settings: &str) -> String {
    format!(
        "{}[plugins.echo]\npath = \"{}\"\n\n[plugins.bomb]\npath = \"{}\"\n\n\
         [[routes]]\nname = \"healthy\"\nplugin = \"echo\"\nsubjects = [\"healthy\"]\n\n\
         [[routes]]\nname = \"bombed\"\nplugin = \"bomb\"\nsubjects = [\"bombed\"]\n",
        preamble(url).replace("[host]\n", &format!("[host]\n{host_settings}")),
        plugin("echo").display(),
        bomb.display()
    )
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

#[tokio::test]
async fn a_compile_bomb_is_stopped_and_holds_back_only_its_own_route() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(&bomb, modules::compile_bomb(BOMB_FUNCTIONS)).expect("write the bomb");

    // Ask the healthy route from before the host starts until it answers.
    let client = nats.client().await;
    let started = Instant::now();
    let first_answer = tokio::spawn(async move {
        loop {
            let asked = client.request("healthy", "hi".into());
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), asked).await {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let host = Host::start_partial(&config(nats.url(), &bomb, "max_compile_time = \"3s\"\n")).await;
    let ready = Instant::now();
    let answered = within(Duration::from_secs(10), "the healthy route to answer", first_answer).await.expect("requester");

    let output = host.output();
    assert!(output.contains("ready: 1 of 2 route(s) running"), "{output}");
    assert!(
        output.contains("plugin `bomb`: cannot compile")
            && output.contains("compiling took longer than `host.max_compile_time` (3s): stopped"),
        "{output}"
    );
    assert!(ready.duration_since(started) >= Duration::from_secs(3), "the bomb was stopped at 3 s, not before:\n{output}");
    assert!(
        answered + Duration::from_secs(1) < ready,
        "the healthy route answered {:?} after start, only {:?} before the bomb was given up:\n{output}",
        answered.duration_since(started),
        ready.saturating_duration_since(answered)
    );
    // The compiler's memory went with its process (it was 620 MB in the host's own).
    let rss = rss_mib(host.pid());
    assert!(rss < 150.0, "the host holds {rss:.0} MiB after the bomb");
    host.stop().await;
}

#[tokio::test]
async fn modules_over_the_size_or_memory_limits_are_refused_by_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bomb = dir.path().join("bomb.wasm");
    std::fs::write(&bomb, modules::compile_bomb(BOMB_FUNCTIONS)).expect("write the bomb");
    let check = |settings: &str| {
        let file = dir.path().join("runtime.toml");
        std::fs::write(&file, config("nats://127.0.0.1:1", &bomb, settings)).expect("write runtime.toml");
        let output = tokio::process::Command::new(binary()).arg("check").arg(file).kill_on_drop(true).output();
        within(Duration::from_secs(60), "switchyard check", output)
    };

    let output = check("max_module_size = \"1MiB\"\n").await.expect("run check");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("plugin `bomb`") && text.contains("more than `host.max_module_size` (1.0 MiB): not compiled"), "{text}");
    assert!(!text.contains("plugin `echo`"), "echo (280 KiB) is under 1 MiB:\n{text}");

    let output = check("max_compile_memory = \"64MiB\"\n").await.expect("run check");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("compiling needed more than `host.max_compile_memory` (64.0 MiB): stopped"), "{text}");
}
