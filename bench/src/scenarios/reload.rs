//! Scenario 5, reload: a real `switchyard run` process serving requests through
//! a plugin file it watches, under steady load (one requester, back to back).
//! The file is replaced (write a temporary file, rename it over: what deploy
//! tools do) by a new version every few seconds, and the bench measures
//!
//! - the time from the rename to the first reply made by the new version, and
//! - request latency around the swap (sent from the rename until a second after
//!   the new version first answered), p99 and max, against the steady p99 and
//!   max of the two seconds before the rename.
//!
//! Versions alternate between `noop` (replies bare) and `echo` (replies with an
//! `echoed-by` header), so every reply says which one made it; each version also
//! carries a unique custom section, so it is a new module to compile, as a real
//! new version is. There is no raw NATS counterpart to a reload: the "raw"
//! column holds the same host's steady figures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process;
use crate::report::{Figure, Target};
use crate::setup::{self, Bench};
use crate::stats::{median, percentile_us};

const SCENARIO: &str = "reload";
const SUBJECT: &str = "bench.reload";
const STEADY: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(1);
/// Give up on a swap that has not shown after this long.
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

/// One request: when it was sent, how long the reply took, and whether the
/// reply came from the `echo` version.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: Instant,
    latency: Duration,
    echo: bool,
}

#[derive(Default)]
struct Swaps {
    serving_ms: Vec<f64>,
    steady_p99: Vec<f64>,
    around_p99: Vec<f64>,
    around_max: Vec<f64>,
    steady_max: Vec<f64>,
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    if !bench.host_side() {
        return Ok(Vec::new());
    }
    let dir = tempfile::tempdir().context("temp folder for the watched plugin")?;
    let live = dir.path().join("live.wasm");
    let modules = [std::fs::read(bench.plugin("noop")?)?, std::fs::read(bench.plugin("echo")?)?];
    replace(&live, &versioned(&modules[0], 0))?;
    let config = dir.path().join("runtime.toml");
    let body = format!(
        "{}[plugins.live]\npath = \"{}\"\n\n[[routes]]\nname = \"reload\"\nplugin = \"live\"\nsubjects = [\"{SUBJECT}\"]\n",
        bench.preamble(),
        live.display()
    );
    std::fs::write(&config, body).context("writing runtime.toml")?;
    let _host = process::spawn_ready(process::switchyard_run(&config)?, "ready:").await.context("starting `switchyard run`")?;

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let load = steady_load(bench, samples.clone()).await?;
    let mut swaps = Swaps::default();
    for run in 1..=bench.runs {
        tokio::time::sleep(STEADY).await;
        let echo = run % 2 == 1;
        replace(&live, &versioned(&modules[usize::from(echo)], run))?;
        let written = Instant::now();
        let serving = wait_for_version(&samples, written, echo).await?;
        tokio::time::sleep(AFTER).await;
        let taken = samples.lock().map(|s| s.clone()).unwrap_or_default();
        let mut steady: Vec<Duration> =
            taken.iter().filter(|s| s.sent < written && written - s.sent <= STEADY).map(|s| s.latency).collect();
        let mut around: Vec<Duration> =
            taken.iter().filter(|s| s.sent >= written && s.sent <= serving + AFTER).map(|s| s.latency).collect();
        swaps.serving_ms.push(serving.duration_since(written).as_secs_f64() * 1e3);
        swaps.steady_p99.push(percentile_us(&mut steady, 99.0));
        swaps.steady_max.push(percentile_us(&mut steady, 100.0));
        swaps.around_p99.push(percentile_us(&mut around, 99.0));
        swaps.around_max.push(percentile_us(&mut around, 100.0));
        eprintln!(
            "  reload run {run}: serving after {:.0} ms; around the swap p99 {:.0} µs, max {:.0} µs; steady p99 {:.0} µs, max {:.0} µs",
            swaps.serving_ms[run - 1],
            swaps.around_p99[run - 1],
            swaps.around_max[run - 1],
            swaps.steady_p99[run - 1],
            swaps.steady_max[run - 1]
        );
    }
    load.abort();
    // A maximum is compared with the maximum of the steady window: on this kind
    // of VM the steady max alone is 10-60 x the steady p99, swap or no swap.
    Ok(vec![
        Figure::new(SCENARIO, "file written -> new version serving", "ms", median(&swaps.serving_ms), f64::NAN, Target::HostAtMost(250.0)),
        Figure::new(
            SCENARIO,
            "p99 around a swap vs steady p99",
            "µs",
            median(&swaps.around_p99),
            median(&swaps.steady_p99),
            Target::RatioAtMost(1.5),
        ),
        Figure::new(
            SCENARIO,
            "max around a swap vs steady max",
            "µs",
            median(&swaps.around_max),
            median(&swaps.steady_max),
            Target::RatioAtMost(2.0),
        ),
    ])
}

/// One requester, back to back, recording every reply.
async fn steady_load(bench: &Bench, samples: Arc<Mutex<Vec<Sample>>>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = bench.plain_client().await?;
    let payload = setup::payload();
    Ok(tokio::spawn(async move {
        loop {
            let sent = Instant::now();
            let Ok(reply) = client.request(SUBJECT, payload.clone()).await else {
                // A timeout: not a sample. Pause so a dead host does not spin us.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            let echo = reply.headers.as_ref().is_some_and(|h| h.get("echoed-by").is_some());
            if let Ok(mut samples) = samples.lock() {
                samples.push(Sample { sent, latency: sent.elapsed(), echo });
            }
        }
    }))
}

/// When the first reply from the wanted version arrived.
async fn wait_for_version(samples: &Mutex<Vec<Sample>>, since: Instant, echo: bool) -> anyhow::Result<Instant> {
    let deadline = since + SWAP_TIMEOUT;
    loop {
        let first = samples.lock().ok().and_then(|s| {
            s.iter().rev().take_while(|s| s.sent + s.latency >= since).filter(|s| s.echo == echo).map(|s| s.sent + s.latency).min()
        });
        if let Some(at) = first {
            return Ok(at);
        }
        anyhow::ensure!(Instant::now() < deadline, "the new plugin version did not serve within {SWAP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `module` with a custom section naming `version`: the same code, a new file.
pub(crate) fn versioned(module: &[u8], version: usize) -> Vec<u8> {
    let name = b"switchyard-bench-version";
    let payload = format!("{version}:{:?}", Instant::now());
    let mut body = leb128(name.len());
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = module.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(body.len()));
    out.extend(body);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Write beside `path`, then rename over it: the reader never sees half a file.
fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp: PathBuf = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_encodes_sizes() {
        assert_eq!(leb128(5), [5]);
        assert_eq!(leb128(300), [0xac, 0x02]);
    }

    #[test]
    fn a_versioned_module_is_still_wasm() {
        let empty = b"\0asm\x01\0\0\0";
        let module = versioned(empty, 3);
        assert!(module.starts_with(empty));
        assert_eq!(module[8], 0);
        assert_eq!(module.len(), 8 + 1 + usize::from(module[9]) + 1);
    }
}
