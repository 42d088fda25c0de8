//! Precompiled module artifacts on disk, keyed by the module's content hash and
//! the engine's compatibility hash, so a restart deserializes (~0.3 ms) instead
//! of compiling (~165 ms for a 158 KB module).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Engine, Module};

use super::compiler;
use super::engine::Runtime;
use crate::config::Isolation;

/// Compile `bytes` for `engine` (the runtime's engine for `fuel`/`isolation`),
/// or load the artifact cached for them: in a child process when the runtime
/// has a compiler binary (`compiler.rs`), else here on a blocking thread.
pub(super) async fn compile(
    runtime: &Runtime,
    engine: &Engine,
    (fuel, isolation): (bool, Isolation),
    hash: &str,
    bytes: Arc<Vec<u8>>,
) -> anyhow::Result<Module> {
    let cached = runtime.cache_dir.as_deref().map(|dir| artifact_path(engine, dir, hash));
    if let Some(path) = cached.as_deref().filter(|path| path.exists()) {
        match deserialize(engine, path) {
            Ok(module) => return Ok(module),
            Err(err) => tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {err:#}"),
        }
    }
    let Some(exe) = &runtime.compiler else {
        let engine = engine.clone();
        let module = tokio::task::spawn_blocking(move || Module::new(&engine, &bytes[..])).await??;
        if let Some(path) = &cached
            && let Err(err) = store(&module, path)
        {
            tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {err:#}");
        }
        return Ok(module);
    };
    let out = compiler::scratch_path(cached.as_deref().unwrap_or(&std::env::temp_dir().join(format!("switchyard-{hash}.cwasm"))));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let functions = runtime.cache_dir.as_deref().map(|dir| dir.join("functions"));
    let module = match compiler::in_child(exe, &runtime.limits, fuel, isolation, bytes, &out, functions.as_deref()).await {
        Ok(()) => deserialize(engine, &out),
        Err(err) => Err(err),
    };
    // Kept as the cached artifact, or removed (a mapped file outlives its name).
    match (&module, &cached) {
        (Ok(_), Some(path)) => {
            if let Err(err) = std::fs::rename(&out, path) {
                tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {err}");
            }
        }
        _ => {
            let _ = std::fs::remove_file(&out);
        }
    }
    module
}

/// Map in an artifact written by `Module::serialize` or `Engine::precompile_module`.
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Module> {
    // SAFETY: the file was written by this host's own binary (a cached artifact
    // or the compiler process) for an engine with the same compatibility hash
    // (part of a cached file's name) into a directory the host owns; wasmtime
    // still checks the header and refuses artifacts from another version or
    // configuration.
    #[allow(unsafe_code)]
    Ok(unsafe { Module::deserialize_file(engine, path) }?)
}

fn artifact_path(engine: &Engine, dir: &Path, hash: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
}

/// Write to a temporary name and rename, so a crash never leaves half an artifact.
fn store(module: &Module, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = compiler::scratch_path(path);
    std::fs::write(&tmp, module.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
