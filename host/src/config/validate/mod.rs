//! Checks that need more than types: names that refer to other sections, NATS
//! subject syntax, stream coverage, numeric ranges, files that must exist.
//!
//! Every check runs and every problem is collected (like Vector's
//! `config/validation.rs`), each at the most precise span available: the value
//! itself when it is written in the file, else the item that took the default.

mod buckets;
mod control;
mod names;
mod nats;
mod plugins;
mod policies;
mod routes;
mod streams;
mod telemetry;

use std::ops::Range;
use std::path::Path;

use super::load::Broken;
use super::problems::Problems;
use super::schema::Config;

/// Every semantic check, on a config some items of which may have failed to
/// deserialize (`broken`: left out of follow-on errors).
pub(super) fn check(config: &Config, broken: &Broken, problems: &mut Problems) {
    nats::check(&config.nats, problems);
    control::check(&config.host.control, problems);
    compile_limits(&config.host, problems);
    telemetry::check(&config.admin, &config.telemetry, problems);
    streams::check(config, broken, problems);
    buckets::check(config, broken, problems);
    plugins::check(config, problems);
    routes::check(config, broken, problems);
}

/// `[host]`'s limits on compiling plugins: each must leave room for a plugin.
fn compile_limits(host: &super::schema::HostConfig, problems: &mut Problems) {
    if host.max_compile_time.is_zero() {
        problems.push_at(&["host", "max_compile_time"], "`host.max_compile_time` must be greater than zero");
    }
    if host.max_compile_memory.as_u64() < 64 << 20 {
        problems.push_at(&["host", "max_compile_memory"], "`host.max_compile_memory` must be at least 64MiB");
    }
    if host.max_module_size.as_u64() < 8 {
        problems.push_at(&["host", "max_module_size"], "`host.max_module_size` must be at least 8B (a wasm header)");
    }
}

/// Why `path` is not a readable regular file, if it is not.
fn file_problem(path: &Path) -> Option<String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Some("path must not be empty".into());
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some(format!("`{shown}` is a directory, expected a file")),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!("file not found: `{shown}`")),
        Err(e) => Some(format!("cannot read `{shown}`: {}", lowercase_io(&e))),
    }
}

/// io errors read "Permission denied (os error 13)"; our messages are lowercase.
fn lowercase_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The line of `span` in the file, for "first declared at line N" hints.
fn line_of(problems: &Problems, span: &Range<usize>) -> Option<usize> {
    problems.source().map(|s| s.position(span.start).line)
}

/// Check the name of the `i`-th `noun` (`stream`, `bucket`, `route`): one
/// subject token, not used by an earlier one (`seen` keeps those). Returns
/// how its problems call the entry, and whether the name is valid and unique.
fn entry_name<'a>(
    noun: &str,
    i: usize,
    name: &'a toml::Spanned<String>,
    seen: &mut std::collections::HashMap<&'a str, Range<usize>>,
    problems: &mut Problems,
) -> (String, bool) {
    let text = name.get_ref();
    let label = if text.is_empty() { format!("{noun} #{}", i + 1) } else { format!("{noun} `{text}`") };
    if let Some(why) = names::token_name_problem(text) {
        let message = if text.is_empty() { format!("{label}: name {why}") } else { format!("invalid {noun} name `{text}`: {why}") };
        problems.push_spanned(name.span(), message);
        return (label, false);
    }
    if let Some(first) = seen.get(text.as_str()) {
        let first = first_declared(problems, first);
        problems.push_spanned(name.span(), format!("duplicate {noun} name `{text}`{first}"));
        return (label, false);
    }
    seen.insert(text.as_str(), name.span());
    (label, true)
}

/// " (first declared at line N)" or nothing when the line is unknown.
fn first_declared(problems: &Problems, span: &Range<usize>) -> String {
    line_of(problems, span).map(|l| format!(" (first declared at line {l})")).unwrap_or_default()
}

/// Renders a duration the way it is written in the file ("1m 30s").
fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}
