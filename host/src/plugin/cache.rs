//! Precompiled module artifacts on disk, keyed by the module's content hash and
//! the engine's compatibility hash, so a restart deserializes (~0.3 ms) instead
//! of compiling (~165 ms for a 158 KB module).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

/// Compile `bytes`, or load the artifact cached for them.
pub(super) fn compile(engine: &Engine, cache_dir: Option<&Path>, hash: &str, bytes: &[u8]) -> anyhow::Result<Module> {
    let Some(dir) = cache_dir else {
        return Ok(Module::new(engine, bytes)?);
    };
    let path = artifact_path(engine, dir, hash);
    if path.exists() {
        // SAFETY: the file was written by `Module::serialize` of an engine with the
        // same compatibility hash (it is part of the file name) into the host's
        // own cache directory; wasmtime still checks the header and refuses
        // artifacts from another version or configuration.
        #[allow(unsafe_code)]
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => return Ok(module),
            Err(err) => tracing::warn!(path = %path.display(), "ignoring unusable cached artifact: {err:#}"),
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Err(err) = store(&module, dir, &path) {
        tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {err:#}");
    }
    Ok(module)
}

fn artifact_path(engine: &Engine, dir: &Path, hash: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
}

/// Write to a temporary name and rename, so a crash never leaves half an artifact.
fn store(module: &Module, dir: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, module.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
