//! The scenarios of issue 6, one file each. Every scenario measures the host and
//! its raw async-nats baseline in the same run, alternating, `--runs` times, and
//! reports the medians.

pub mod core;
pub mod isolation;
pub mod jetstream;
pub mod memory;
pub mod reload;
pub mod request;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Core,
    Jetstream,
    Request,
    Isolation,
    Reload,
    Memory,
}

impl Scenario {
    pub const ALL: [Scenario; 6] =
        [Scenario::Core, Scenario::Jetstream, Scenario::Request, Scenario::Isolation, Scenario::Reload, Scenario::Memory];
}
