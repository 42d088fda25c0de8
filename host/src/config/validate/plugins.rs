//! Checks of `[plugins.NAME]`: the name, the module file, sandbox limits, the
//! publish allow-list and environment names. The module's content (exports, ABI
//! version) is checked by the plugin loader, which reports at `path.span()`.

use bytesize::ByteSize;

use super::super::problems::Problems;
use super::super::schema::{Config, RolloutConfig};
use super::super::subject::subject_problem;
use super::file_problem;
use super::names::{env_name_problem, plugin_name_problem};

/// One wasm page: the smallest memory a module can have.
const MIN_MEMORY: u64 = 64 * 1024;
/// wasm32 cannot address more.
const MAX_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

pub(super) fn check(config: &Config, problems: &mut Problems) {
    for (name, plugin) in &config.plugins {
        let label = format!("plugin `{name}`");
        let at = |key: &'static str| ["plugins", name.as_str(), key];

        if let Some(why) = plugin_name_problem(name) {
            problems.push_at_key(&["plugins", name], format!("invalid plugin name `{name}`: {why}"));
        }
        match &plugin.source {
            // The file is the host's copy of the object: it need not exist yet.
            Some(source) if plugin.path.span() != (0..0) => {
                problems.push_spanned(source.span(), format!("{label}: set `path` or `source`, not both"));
            }
            Some(_) => {}
            None if plugin.path.get_ref().as_os_str().is_empty() && plugin.path.span() == (0..0) => {
                problems
                    .push_at_key(&["plugins", name], format!("{label}: set `path` (a .wasm file) or `source` (\"object:BUCKET/NAME\")"));
            }
            None => {
                if let Some(why) = file_problem(plugin.path.get_ref()) {
                    problems.push_spanned(plugin.path.span(), format!("{label}: {why}"));
                }
            }
        }

        let memory = plugin.memory.as_u64();
        if memory < MIN_MEMORY {
            problems
                .push_at(&at("memory"), format!("{label}: `memory` must be at least 64KiB (one wasm page), got {}", bytes(plugin.memory)));
        } else if memory > MAX_MEMORY {
            problems.push_at(
                &at("memory"),
                format!("{label}: `memory` must be at most 4GiB (all a wasm32 module can address), got {}", bytes(plugin.memory)),
            );
        }
        if plugin.timeout.is_zero() {
            problems.push_at(&at("timeout"), format!("{label}: `timeout` must be greater than zero"));
        }
        if plugin.fuel == Some(0) {
            problems.push_at(&at("fuel"), format!("{label}: `fuel` must be at least 1 (leave it out for no limit)"));
        }
        for (key, patterns) in [("publish", &plugin.publish), ("request", &plugin.request)] {
            for (j, pattern) in patterns.iter().enumerate() {
                if let Some(why) = subject_problem(pattern, true) {
                    problems.push_at(&["plugins", name, key, &j.to_string()], format!("{label}: invalid {key} pattern `{pattern}`: {why}"));
                }
            }
        }
        for var in plugin.env.keys() {
            if let Some(why) = env_name_problem(var) {
                problems.push_at_key(&["plugins", name, "env", var], format!("{label}: invalid environment variable name `{var}`: {why}"));
            }
        }
        rollout(&label, name, &plugin.rollout, problems);
    }
}

/// `[plugins.NAME.rollout]`: shares within range, steps that climb to 100 %.
fn rollout(label: &str, name: &str, rollout: &RolloutConfig, problems: &mut Problems) {
    let at = |key: &'static str| ["plugins", name, "rollout", key];
    let share = |value: f64| (0.0..=1.0).contains(&value);
    if !share(rollout.max_failure_rate) {
        problems.push_at(&at("max_failure_rate"), format!("{label}: `rollout.max_failure_rate` must be between 0.0 and 1.0"));
    }
    if !share(rollout.max_failure_rate_increase) {
        let what = "`rollout.max_failure_rate_increase` must be between 0.0 and 1.0";
        problems.push_at(&at("max_failure_rate_increase"), format!("{label}: {what}"));
    }
    if !(1.0..=f64::INFINITY).contains(&rollout.max_latency_ratio) {
        problems.push_at(&at("max_latency_ratio"), format!("{label}: `rollout.max_latency_ratio` must be at least 1.0"));
    }
    if !(rollout.sample > 0.0 && rollout.sample <= 1.0) {
        problems.push_at(&at("sample"), format!("{label}: `rollout.sample` must be greater than 0.0 and at most 1.0"));
    }
    if rollout.concurrency == 0 {
        problems.push_at(&at("concurrency"), format!("{label}: `rollout.concurrency` must be at least 1"));
    }
    let climbs = rollout.steps.windows(2).all(|pair| pair[0] < pair[1]);
    let in_range = rollout.steps.iter().all(|step| (1..=100).contains(step));
    if !climbs || !in_range || rollout.steps.last() != Some(&100) {
        let what = "`rollout.steps` must be percentages from 1 to 100 that climb, ending at 100, like [1, 10, 50, 100]";
        problems.push_at(&at("steps"), format!("{label}: {what}, got {:?}", rollout.steps));
    }
}

/// "1024 bytes" — exact, unlike `ByteSize`'s rounded display.
fn bytes(size: ByteSize) -> String {
    format!("{} bytes", size.as_u64())
}
