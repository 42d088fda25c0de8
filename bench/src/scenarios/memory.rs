//! Scenario 6, memory: the resident set of a real `switchyard run` process, idle,
//! with 10 plugins loaded and a core route on each, read from /proc. The baseline
//! is this bench binary re-run as a bare async-nats client subscribed to the same
//! 10 subjects (`switchyard-bench idle-client`): what a process costs that talks
//! to NATS and does nothing else.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Command;

use crate::process;
use crate::report::{Figure, Target};
use crate::setup::Bench;
use crate::stats::median;

const SCENARIO: &str = "memory idle";
const PLUGINS: usize = 10;
/// The reference plugins, loaded in turn until there are ten (each load is a
/// separate compiled module in memory, as ten different plugins would be).
const MODULES: [(&str, &str); 4] = [("echo", ""), ("transform", "config = { target = \"bench.out\" }\n"), ("faulty", ""), ("noop", "")];
/// Time to settle after "ready" before reading the resident set.
const SETTLE: Duration = Duration::from_secs(2);

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let config = write_config(bench)?;
    let (mut host, mut raw) = (Vec::new(), Vec::new());
    let serve = || process::switchyard_run(&config);
    if bench.host_side() {
        // Uncounted: the first start compiles the plugins into the cache; a
        // restarted host (the case measured) deserializes them.
        rss_when_ready(serve()?, "ready:").await.context("warming the plugin cache")?;
    }
    for i in 0..bench.runs {
        host.push(f64::NAN);
        raw.push(f64::NAN);
        if bench.host_side() {
            host[i] = rss_when_ready(serve()?, "ready:").await.context("measuring `switchyard run`")?;
        }
        if bench.raw_side() {
            let mut command = Command::new(std::env::current_exe().context("locating the bench binary")?);
            command.args(["idle-client", "--url", &bench.url, "--subjects", &PLUGINS.to_string()]);
            raw[i] = rss_when_ready(command, "ready").await.context("measuring the idle client")?;
        }
        eprintln!("  memory run {}: host {:.1} MiB, raw client {:.1} MiB", i + 1, host[i], raw[i]);
    }
    Ok(vec![Figure::new(SCENARIO, "RSS, 10 plugins loaded", "MiB", median(&host), median(&raw), Target::HostAtMost(60.0))])
}

fn write_config(bench: &Bench) -> anyhow::Result<PathBuf> {
    let mut body = String::new();
    for i in 0..PLUGINS {
        let (module, extra) = MODULES[i % MODULES.len()];
        body.push_str(&format!("[plugins.p{i}]\npath = \"{}\"\n{extra}\n", bench.plugin(module)?.display()));
    }
    for i in 0..PLUGINS {
        body.push_str(&format!("[[routes]]\nname = \"r{i}\"\nplugin = \"p{i}\"\nsubjects = [\"bench.mem.{i}\"]\n\n"));
    }
    bench.write_config("memory", &body)
}

/// Start `command`, let it settle once ready, and read its resident set.
async fn rss_when_ready(command: Command, ready: &str) -> anyhow::Result<f64> {
    let mut child = process::spawn_ready(command, ready).await?;
    tokio::time::sleep(SETTLE).await;
    let rss = process::rss_mib(child.id().context("child already exited")?);
    let _ = child.kill().await;
    rss
}

/// The baseline process: connect like the host, subscribe to `subjects`
/// subjects, say "ready", and idle until stdin closes or the bench kills it.
pub(crate) async fn idle_client(url: &str, subjects: usize) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .subscription_capacity(switchyard::config::defaults::subscription_capacity())
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut held = Vec::new();
    for i in 0..subjects {
        held.push(client.subscribe(format!("bench.mem.{i}")).await?);
    }
    client.flush().await?;
    println!("ready");
    let mut stdin = tokio::io::stdin();
    let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
    Ok(())
}
