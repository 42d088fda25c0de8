//! `switchyard-bench` (`make bench`): every scenario of the performance issue on
//! this machine, the host beside a raw async-nats baseline measured in the same
//! run, against a nats-server the bench starts on loopback. Prints a table and
//! writes it as JSON. Not a test: it never fails on speed, only on a broken setup.

mod allocs;
mod floor;
mod process;
mod report;
mod scenarios;
mod setup;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};

use scenarios::Scenario;

/// Counts allocations while scenario 12 asks it to (`allocs.rs`); otherwise the system allocator.
#[global_allocator]
static ALLOCATOR: allocs::Counting = allocs::Counting;

#[derive(Debug, Parser)]
#[command(about = "Switchyard against raw async-nats, same run, printed as ratios")]
struct Args {
    /// Multiply every message count by this: 0.05 checks the bench in seconds.
    #[arg(long, env = "BENCH_SCALE", default_value_t = 1.0)]
    scale: f64,
    /// Runs per figure; the median is reported.
    #[arg(long, env = "BENCH_RUNS", default_value_t = 3)]
    runs: usize,
    /// Only these scenarios (comma separated); default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Measure only one side (for profiling one side with perf).
    #[arg(long, value_enum, default_value_t = setup::Side::Both)]
    side: setup::Side,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    json: PathBuf,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// The memory baseline: a bare client that subscribes and idles.
    #[command(hide = true)]
    IdleClient {
        #[arg(long)]
        url: String,
        #[arg(long)]
        subjects: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Child::IdleClient { url, subjects }) = &args.child {
        return scenarios::memory::idle_client(url, *subjects).await;
    }
    anyhow::ensure!(args.scale > 0.0 && args.runs > 0, "--scale and --runs must be positive");
    let wanted = if args.only.is_empty() { Scenario::ALL.to_vec() } else { args.only.clone() };
    let bench = setup::Bench::start(args.scale, args.runs, args.side).await?;
    eprintln!("nats-server at {}; scale {}, {} run(s) per figure", bench.url, args.scale, args.runs);
    let started = Instant::now();
    let mut figures = Vec::new();
    for scenario in Scenario::ALL.into_iter().filter(|s| wanted.contains(s)) {
        eprintln!("{scenario:?}:");
        let result = match scenario {
            Scenario::Core => scenarios::core::run(&bench).await,
            Scenario::Jetstream => scenarios::jetstream::run(&bench).await,
            Scenario::Forward => scenarios::forward::run(&bench).await,
            Scenario::Kv => scenarios::kv::run(&bench).await,
            Scenario::Allocs => scenarios::allocs::run(&bench).await,
            Scenario::Request => scenarios::request::run(&bench).await,
            Scenario::Isolation => scenarios::isolation::run(&bench).await,
            Scenario::Reload => scenarios::reload::run(&bench).await,
            Scenario::Memory => scenarios::memory::run(&bench).await,
            Scenario::Neighbour => scenarios::neighbour::run(&bench).await,
            Scenario::Telemetry => scenarios::telemetry::run(&bench).await,
            Scenario::Shadow => scenarios::shadow::run(&bench).await,
        };
        match result {
            Ok(mut found) => figures.append(&mut found),
            Err(err) => {
                bench.stop().await;
                return Err(err.context(format!("scenario {scenario:?}")));
            }
        }
    }
    bench.stop().await;
    println!("\n{}", report::table(&figures));
    let json = if args.json.is_relative() { std::env::current_dir()?.join(&args.json) } else { args.json.clone() };
    report::write_json(&json, &figures)?;
    println!(
        "median of {} run(s), scale {}; {:.0} s; written to {}",
        args.runs,
        args.scale,
        started.elapsed().as_secs_f64(),
        json.display()
    );
    Ok(())
}
