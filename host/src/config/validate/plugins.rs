//! Checks of `[plugins.NAME]`: the name, the module file, sandbox limits, the
//! publish allow-list and environment names. The module's content (exports, ABI
//! version) is checked by the plugin loader, which reports at `path.span()`.

use bytesize::ByteSize;

use super::super::problems::Problems;
use super::super::schema::Config;
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
        for (j, pattern) in plugin.publish.iter().enumerate() {
            if let Some(why) = subject_problem(pattern, true) {
                problems
                    .push_at(&["plugins", name, "publish", &j.to_string()], format!("{label}: invalid publish pattern `{pattern}`: {why}"));
            }
        }
        for var in plugin.env.keys() {
            if let Some(why) = env_name_problem(var) {
                problems.push_at_key(&["plugins", name, "env", var], format!("{label}: invalid environment variable name `{var}`: {why}"));
            }
        }
    }
}

/// "1024 bytes" — exact, unlike `ByteSize`'s rounded display.
fn bytes(size: ByteSize) -> String {
    format!("{} bytes", size.as_u64())
}
