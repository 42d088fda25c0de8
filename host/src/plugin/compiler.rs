//! Compiling a plugin in a child process.
//!
//! Cranelift cannot be interrupted, and a hostile module (100,000 functions, a
//! few MB) keeps it busy for tens of seconds and holds hundreds of MB that the
//! allocator never gives back. So the daemon compiles each new module in a
//! child process of its own binary (`switchyard compile-module`, hidden): the
//! child is stopped at `[host] max_compile_time`, cannot grow past
//! `[host] max_compile_memory`, and returns all its memory when it exits. (It
//! runs at the host's priority: at the lowest, a reload under load waited
//! seconds for CPU while the serving threads had it all.) It writes the
//! compiled artifact, which the host maps in like a cached one (`cache.rs`).
//!
//! Embedders and tests that load plugins through the library (no `switchyard`
//! binary to run) compile in process, unbounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytesize::ByteSize;
use tokio::io::AsyncWriteExt as _;

use super::engine;
use super::function_cache::{DiskFunctionCache, FunctionCache};
use crate::config::Isolation;
use wasmtime::CacheStore;

/// What one compilation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    pub max_time: Duration,
    pub max_memory: ByteSize,
    pub max_module_size: ByteSize,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self::from(&crate::config::HostConfig::default())
    }
}

impl From<&crate::config::HostConfig> for CompileLimits {
    fn from(host: &crate::config::HostConfig) -> Self {
        Self { max_time: host.max_compile_time, max_memory: host.max_compile_memory, max_module_size: host.max_module_size }
    }
}

/// A compilation stopped at one of [`CompileLimits`]: the module may be valid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct LimitHit(String);

/// The child's subcommand name (hidden from `--help`).
const SUBCOMMAND: &str = "compile-module";

/// The binary that runs [`SUBCOMMAND`], set once by `main`.
static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Compile plugins in child processes of `exe`, a `switchyard` binary, from now
/// on: every [`super::Runtime`] made after this call does.
pub fn compile_with(exe: PathBuf) {
    let _ = BINARY.set(exe);
}

/// The binary set by [`compile_with`], if any.
pub(super) fn binary() -> Option<PathBuf> {
    BINARY.get().cloned()
}

/// Compile `bytes` for the engine `fuel`/`isolation` select, in a child process
/// running `exe`, into the artifact file `out`; `functions` is the on-disk
/// function cache it shares with earlier compilations.
pub(super) async fn in_child(
    exe: &Path,
    limits: &CompileLimits,
    fuel: bool,
    isolation: Isolation,
    bytes: Arc<Vec<u8>>,
    out: &Path,
    functions: Option<&Path>,
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(exe);
    command.arg(SUBCOMMAND).arg("--out").arg(out).arg("--max-memory").arg(limits.max_memory.as_u64().to_string());
    if fuel {
        command.arg("--fuel");
    }
    if isolation == Isolation::Fresh {
        command.arg("--fresh");
    }
    if let Some(dir) = functions {
        command.arg("--functions").arg(dir);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Dropped on timeout (or when the load is abandoned): the child dies with it.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the compiler process `{}`", exe.display()))?;
    let mut stdin = child.stdin.take().context("the compiler process has no stdin")?;
    let run = async move {
        stdin.write_all(&bytes).await.context("sending the module to the compiler process")?;
        drop(stdin);
        child.wait_with_output().await.context("waiting for the compiler process")
    };
    let limit = limits.max_time;
    let output = tokio::time::timeout(limit, run).await.map_err(|_| {
        LimitHit(format!("compiling took longer than `host.max_compile_time` ({}): stopped", humantime::format_duration(limit)))
    })??;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim().trim_start_matches("error: ");
    if said.contains("memory allocation of") || said.contains("out of memory") {
        let max = limits.max_memory;
        return Err(LimitHit(format!("compiling needed more than `host.max_compile_memory` ({max}): stopped")).into());
    }
    match (said.is_empty(), output.status.code()) {
        (false, _) => anyhow::bail!("{}", super::text::printable(said)),
        (true, Some(code)) => anyhow::bail!("the compiler process exited with status {code}"),
        (true, None) => anyhow::bail!("the compiler process was killed ({})", output.status),
    }
}

/// The child's side: limit its own memory, read the module from
/// stdin, compile it for the engine the flags describe, write the artifact.
pub fn child_main(out: &Path, max_memory: u64, fuel: bool, fresh: bool, functions: Option<PathBuf>) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    // Heap and writable private mappings: what cranelift allocates.
    setrlimit(Resource::RLIMIT_DATA, max_memory, max_memory).context("limiting the compiler's memory")?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading the module")?;
    let isolation = if fresh { Isolation::Fresh } else { Isolation::Pooled };
    let functions: Arc<dyn CacheStore> = match functions {
        Some(dir) => Arc::new(DiskFunctionCache::new(dir)),
        None => Arc::new(FunctionCache::default()),
    };
    let config = engine::config_for(fuel, isolation, &functions)?;
    let engine = wasmtime::Engine::new(&config).map_err(anyhow::Error::from)?;
    let artifact = engine.precompile_module(&bytes).map_err(anyhow::Error::from)?;
    std::fs::write(out, artifact).with_context(|| format!("writing `{}`", out.display()))
}

/// A file name beside `near` for one compilation's artifact, unique in this
/// process and across processes.
pub(super) fn scratch_path(near: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    near.with_extension(format!("tmp{}-{n}", std::process::id()))
}
