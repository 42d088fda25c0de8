//! `switchyard check`: validate a runtime.toml and load every plugin it names,
//! listing every problem with file, line and column.

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::plugin::{CompileLimits, Plugin, PluginSpec, Runtime};

pub(crate) async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    // A file with problems still has its plugins loaded: one run lists
    // everything wrong with the file and its plugins, in file order.
    let (loaded, mut problems) = match config::load_partial(path) {
        Ok(partial) => partial,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // No cache: check must look at the bytes on disk, and must not write.
    let runtime = Runtime::new(None)?.with_limits(CompileLimits::from(&loaded.config.host));
    let mut from_objects = Vec::new();
    for (name, plugin) in &loaded.config.plugins {
        // Fetched by the host at run time; `switchyard deploy` checks what goes there.
        if let Some(source) = &plugin.source {
            from_objects.push(format!("{name} ({})", source.get_ref()));
            continue;
        }
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
    if !from_objects.is_empty() {
        println!("  not checked here, fetched from the object store at run time: {}", from_objects.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
