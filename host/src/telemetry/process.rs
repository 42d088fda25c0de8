//! The standard `process_*` metrics (resident memory, CPU time, open and
//! allowed file descriptors, start time), read from `/proc/self` at each
//! scrape, under the names Prometheus's own clients use.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub(super) struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(stat) = Stat::read() else { return Ok(()) };
        let mut gauge = |name: &str, help: &str, value: f64| {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge("process_resident_memory_bytes", "Resident memory size in bytes", stat.rss_bytes as f64)?;
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", stat.vsize_bytes as f64)?;
        gauge("process_start_time_seconds", "Start time of the process since the Unix epoch", stat.start_time_seconds)?;
        if let Some(fds) = open_fds() {
            gauge("process_open_fds", "Open file descriptors", fds as f64)?;
        }
        if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
            gauge("process_max_fds", "Maximum number of open file descriptors", soft as f64)?;
        }
        let cpu = ConstCounter::new(stat.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)
    }
}

/// What `/proc/self/stat` says, in units.
struct Stat {
    cpu_seconds: f64,
    rss_bytes: u64,
    vsize_bytes: u64,
    start_time_seconds: f64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split_whitespace().collect();
        // Field numbers from proc(5), less the two before the ')'.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = clock_ticks()?;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()?? as u64;
        let boot = boot_time()?;
        Some(Stat {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            vsize_bytes: field(23)?,
            rss_bytes: field(24)? * page,
            start_time_seconds: boot + field(22)? as f64 / ticks,
        })
    }
}

fn clock_ticks() -> Option<f64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()?.map(|t| t as f64)
}

/// Seconds since the epoch at boot (`btime` in /proc/stat).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|t| t.trim().parse().ok())
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}
