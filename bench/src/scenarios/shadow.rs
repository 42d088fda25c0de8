//! Shadow rollouts (issue 17): the core burst through `noop` while a second
//! version of it runs as a shadow on every message (`sample = 1.0`) or on one
//! in ten (`sample = 0.1`), against the same host with no version on trial, in
//! the same run. The "raw" column holds the host without a shadow. Also
//! reported: the share of messages the shadow compared (the rest it dropped:
//! its `concurrency` calls could not keep up with the burst and its queue was
//! full).

use anyhow::Context as _;
use switchyard::daemon::{ConfigSource, Host};
use switchyard::telemetry::Outcome;

use super::core::{Run, publish_and_wait};
use super::reload::versioned;
use crate::report::{Figure, Target};
use crate::setup::Bench;
use crate::stats::median;

const FULL: usize = 300_000;
const SCENARIO: &str = "shadow rollout, core 300k x 128B";
const SUBJECT: &str = "bench.shadow";

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    if !bench.host_side() {
        return Ok(Vec::new());
    }
    let n = bench.count(FULL);
    let (mut off, mut full, mut tenth) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..bench.runs {
        off.push(host(bench, n, None).await?);
        full.push(host(bench, n, Some(1.0)).await?);
        tenth.push(host(bench, n, Some(0.1)).await?);
        eprintln!(
            "  shadow run {}: none {:.0} msg/s; sample 1.0 {:.0} msg/s ({:.0} % compared); sample 0.1 {:.0} msg/s ({:.1} % compared)",
            i + 1,
            off[i].0.rate,
            full[i].0.rate,
            full[i].1 * 100.0,
            tenth[i].0.rate,
            tenth[i].1 * 100.0
        );
    }
    // Each run measures the three back to back; this machine drifts between
    // runs by more than a shadow costs, so the ratio is the median of each
    // run's own ratio, shown against the median throughput without a shadow.
    let none = median(&off.iter().map(|(run, _)| run.rate).collect::<Vec<_>>());
    let paired =
        |runs: &[(Run, f64)]| none * median(&runs.iter().zip(&off).map(|((on, _), (off, _))| on.rate / off.rate).collect::<Vec<_>>());
    let compared = |runs: &[(Run, f64)]| median(&runs.iter().map(|(_, share)| share * 100.0).collect::<Vec<_>>());
    Ok(vec![
        Figure::new(SCENARIO, "throughput, shadow sample 1.0 (run-paired)", "msg/s", paired(&full), none, Target::RatioAtLeast(0.5)),
        Figure::new(SCENARIO, "throughput, shadow sample 0.1 (run-paired)", "msg/s", paired(&tenth), none, Target::RatioAtLeast(0.9)),
        Figure::new(SCENARIO, "compared by the shadow, sample 1.0", "%", compared(&full), 100.0, Target::RatioAtLeast(0.0)),
        Figure::new(SCENARIO, "compared by the shadow, sample 0.1", "%", compared(&tenth), 10.0, Target::RatioAtLeast(0.0)),
    ])
}

/// One burst on a host serving `noop`, with a second version of it as a
/// shadow at `sample` when given; the run and the share of messages compared.
async fn host(bench: &Bench, n: usize, sample: Option<f64>) -> anyhow::Result<(Run, f64)> {
    let dir = tempfile::tempdir().context("temp folder for the plugin")?;
    let wasm = dir.path().join("noop.wasm");
    let module = std::fs::read(bench.plugin("noop")?)?;
    std::fs::write(&wasm, versioned(&module, 1))?;
    let body = |rollout: &str| {
        format!(
            "[plugins.noop]\npath = \"{}\"\nrollout = {{ {rollout} }}\n\n[[routes]]\nname = \"shadowed\"\nplugin = \"noop\"\nsubjects = [\"{SUBJECT}\"]\n",
            wasm.display()
        )
    };
    let path = bench.write_config("shadow", &body(""))?;
    let loaded = switchyard::config::load(&path).map_err(|problems| anyhow::anyhow!("bench config:\n{problems}"))?;
    let source = ConfigSource { path: path.clone(), overrides: Default::default() };
    let mut host = Host::start(loaded.config, Some(source)).await.context("starting the host")?;
    if let Some(sample) = sample {
        std::fs::write(&wasm, versioned(&module, 2))?;
        bench.write_config("shadow", &body(&format!("strategy = \"shadow\", sample = {sample}")))?;
        let report = host.reload("bench").await;
        anyhow::ensure!(report.refused.is_empty() && !report.changes.is_empty(), "the shadow version: {}", report.summary());
    }
    let metrics = host.metrics.clone();
    let run = publish_and_wait(bench, SUBJECT, n, || metrics.total(Outcome::Ack)).await;
    let shadow = host.status().routes.first().and_then(|route| route.trial.clone()).and_then(|trial| trial.shadow);
    host.stop().await;
    let compared = shadow.map_or(0, |s| s.same + s.different);
    Ok((run?, compared as f64 / n as f64))
}
