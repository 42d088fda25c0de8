//! `runtime.toml`: the typed schema, loading with line/column errors, and
//! validation that reports every problem at once.
//!
//! ```text
//! load(path) = read → parse (syntax, then each item's types) → resolve_paths → validate
//! ```
//!
//! A syntax error stops everything (the rest of the file cannot be trusted).
//! Otherwise every problem is collected: type problems of each item, then the
//! semantic checks on the items that did deserialize (leaving out follow-on
//! errors such as "unknown plugin" for a plugin that is only broken).
//! After a successful load, [`Loaded::source`] keeps the text so later stages
//! (plugin loading) can report problems at a config span the same way.

pub mod defaults;
mod load;
mod observability;
mod paths;
mod problems;
mod rollout;
mod route_spec;
mod schema;
mod source;
mod units;
mod validate;

#[cfg(test)]
mod ui_tests;

use std::path::Path;

pub use paths::{base_dir, resolve_paths};
pub use problems::{Problem, Problems};
pub use route_spec::{CoreSpec, JetStreamSpec, Kind, RouteSpec, Schedule, TimerSpec};
pub use schema::*;
pub use source::{Position, Source};
/// Subject syntax and matching live with the ABI: the SDK's mock host needs them too.
pub use switchyard_abi::subject;

/// A valid config and the text it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// With every relative path resolved against the file's directory.
    pub config: Config,
    /// For reporting problems found later at a config span, e.g.
    /// `loaded.source.problem(plugin.path.span(), "…")`.
    pub source: Source,
}

/// Reads, parses, resolves paths and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, Problems> {
    let (loaded, problems) = load_partial(path)?;
    problems.into_result(loaded)
}

/// Like [`load`], but a file with problems still gives the config as far as it
/// was read (entries that failed to parse left out), beside its problems, so
/// `check` can load that config's plugins too and list everything in one run.
/// `Err` only when there is no config at all (unreadable, bad TOML syntax).
pub fn load_partial(path: &Path) -> Result<(Loaded, Problems), Problems> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str_partial(&text, path),
        Err(e) => {
            let mut problems = Problems::without_source(path);
            problems.push(match e.kind() {
                std::io::ErrorKind::NotFound => "config file not found".to_string(),
                std::io::ErrorKind::InvalidData => "config file is not valid UTF-8".to_string(),
                std::io::ErrorKind::IsADirectory => "config path is a directory, expected a TOML file".to_string(),
                _ => format!("cannot read config file: {}", e.to_string().to_lowercase()),
            });
            Err(problems)
        }
    }
}

/// Like [`load`] for text already in memory that lives (or will live) at `path`:
/// relative paths resolve against `path`'s directory and messages name `path`.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, Problems> {
    let (loaded, problems) = load_str_partial(text, path)?;
    problems.into_result(loaded)
}

fn load_str_partial(text: &str, path: &Path) -> Result<(Loaded, Problems), Problems> {
    let source = Source::new(path, text);
    let load::Parsed { mut config, broken, mut problems } = load::parse_source(&source);
    if broken.syntax {
        return Err(problems);
    }
    resolve_paths(&mut config, &base_dir(path));
    // Also when some items failed to deserialize: the rest is still checked, so
    // one `switchyard check` shows everything.
    validate::check(&config, &broken, &mut problems);
    Ok((Loaded { config, source }, problems))
}

/// Parses `text` (named `file` in messages) into a [`Config`], checking syntax
/// and types only: paths stay as written and nothing is validated.
pub fn parse(text: &str, file: &Path) -> Result<Config, Problems> {
    let parsed = load::parse_source(&Source::new(file, text));
    parsed.problems.into_result(parsed.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_one_clear_problem() {
        let path = Path::new("/nonexistent/switchyard/runtime.toml");
        let problems = load(path).err().map(|p| p.to_string());
        assert_eq!(
            problems.as_deref(),
            Some(
                "/nonexistent/switchyard/runtime.toml: error: config file not found\n\
                 1 problem found in /nonexistent/switchyard/runtime.toml"
            )
        );
    }

    #[test]
    fn an_empty_file_is_a_valid_config_of_defaults() -> Result<(), Problems> {
        let loaded = load_str("", Path::new("/etc/switchyard/runtime.toml"))?;
        assert_eq!(loaded.config.nats.url, None);
        assert_eq!(loaded.config.host.cache_dir, Path::new("/etc/switchyard/.switchyard/cache"));
        assert!(loaded.config.routes.is_empty());
        Ok(())
    }

    #[test]
    fn later_stages_report_at_config_spans() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-ui");
        let text = "[plugins.echo]\npath = \"files/dummy.wasm\"\n";
        let loaded = load_str(text, &dir.join("x.toml"))?;
        let plugin = loaded.config.plugins.get("echo").ok_or("no plugin")?;
        assert_eq!(plugin.path.get_ref(), &dir.join("files/dummy.wasm"));
        let mut problems = loaded.source.problems();
        problems.push_spanned(plugin.path.span(), "plugin `echo`: module does not export `switchyard_handle`");
        let shown = problems.to_string().replace(&format!("{}/", dir.display()), "");
        assert_eq!(shown, "x.toml:2:8: error: plugin `echo`: module does not export `switchyard_handle`\n1 problem found in x.toml");
        let one = loaded.source.problem(plugin.path.span(), "m");
        assert_eq!(one.position, Some(Position { line: 2, column: 8 }));
        Ok(())
    }
}
