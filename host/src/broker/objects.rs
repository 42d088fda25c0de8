//! Plugin modules kept in a JetStream object store (`source = "object:BUCKET/NAME"`):
//! fetched to the host's copy under `cache_dir`, which the loader then reads
//! like any plugin file. Written to a temporary file and renamed, so a reader
//! never sees half a module; left alone when unchanged.

use std::path::Path;

use anyhow::Context as _;
use async_nats::jetstream::Context as JetStream;
use async_nats::jetstream::object_store::GetErrorKind;
use tokio::io::AsyncReadExt as _;

use crate::config::ObjectSource;

/// Fetch `source` into `path`; whether the copy there changed.
pub async fn fetch(js: &JetStream, source: &ObjectSource, path: &Path) -> anyhow::Result<bool> {
    let store = js
        .get_object_store(&source.bucket)
        .await
        .map_err(|err| anyhow::anyhow!("`{source}`: object store bucket `{}` not found or not readable: {err}", source.bucket))?;
    let mut object = store.get(&source.object).await.map_err(|err| match err.kind() {
        GetErrorKind::NotFound => anyhow::anyhow!("`{source}`: no object `{}` in bucket `{}`", source.object, source.bucket),
        _ => anyhow::anyhow!("`{source}`: {err}"),
    })?;
    let mut bytes = Vec::with_capacity(object.info().size);
    object.read_to_end(&mut bytes).await.with_context(|| format!("`{source}`: reading the object"))?;
    if tokio::fs::read(path).await.is_ok_and(|current| current == bytes) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating `{}`", dir.display()))?;
    let partial = path.with_extension("wasm.partial");
    tokio::fs::write(&partial, &bytes).await.with_context(|| format!("writing `{}`", partial.display()))?;
    tokio::fs::rename(&partial, path).await.with_context(|| format!("writing `{}`", path.display()))?;
    Ok(true)
}
