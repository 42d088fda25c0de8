//! `switchyard check`: validate a runtime.toml and load every plugin it names,
//! listing every problem with file, line and column.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::plugin::{CompileLimits, Plugin, PluginSpec, Runtime};

pub(crate) async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut problems = loaded.source.problems();
    // No cache: check must look at the bytes on disk, and must not write.
    let runtime = Runtime::new(None)?.with_limits(CompileLimits::from(&loaded.config.host));
    for (name, plugin) in &loaded.config.plugins {
        let result = match PluginSpec::from_config(name, plugin) {
            Ok(spec) => Plugin::load(&runtime, spec).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(err) => Err(format!("plugin `{name}`: config cannot be encoded: {err:#}")),
        };
        if let Err(message) = result {
            problems.push_spanned(plugin.path.span(), message);
        }
    }
    if !problems.is_empty() {
        eprintln!("{problems}");
        return Ok(ExitCode::FAILURE);
    }
    let config = &loaded.config;
    println!(
        "{}: ok ({} plugin(s), {} route(s), {} stream(s))",
        path.display(),
        config.plugins.len(),
        config.routes.len(),
        config.streams.len()
    );
    Ok(ExitCode::SUCCESS)
}
