//! The scenarios of issue 6, one file each. Every scenario measures the host and
//! its raw async-nats baseline in the same run, alternating, `--runs` times, and
//! reports the medians. The busy neighbour and telemetry compare the host with
//! itself instead (quiet vs busy, telemetry off vs on): their "raw" column holds
//! the baseline setting.

pub(crate) mod allocs;
pub(crate) mod core;
pub(crate) mod forward;
pub(crate) mod isolation;
pub(crate) mod jetstream;
pub(crate) mod kv;
pub(crate) mod memory;
pub(crate) mod neighbour;
pub(crate) mod reload;
pub(crate) mod request;
pub(crate) mod shadow;
pub(crate) mod telemetry;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    Core,
    Jetstream,
    Request,
    Isolation,
    Reload,
    Memory,
    Neighbour,
    Telemetry,
    Shadow,
    Forward,
    Kv,
    Allocs,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 12] = [
        Scenario::Core,
        Scenario::Jetstream,
        Scenario::Forward,
        Scenario::Kv,
        Scenario::Allocs,
        Scenario::Request,
        Scenario::Isolation,
        Scenario::Reload,
        Scenario::Memory,
        Scenario::Neighbour,
        Scenario::Telemetry,
        Scenario::Shadow,
    ];
}
