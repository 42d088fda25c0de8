//! Loading one plugin version: read the file, hash it, compile (or load the cached
//! artifact), check its exports and ABI version, and run `init` with its config on
//! a first instance. All of this happens off the message path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use switchyard_abi::functions::{self, Function};
use switchyard_abi::{ABI_VERSION, IMPORT_MODULE, features, names};
use wasmtime::{ExternType, FuncType, InstancePre, Linker, Module, ValType};

use super::compiler::LimitHit;
use super::engine::{Runtime, TickerGuard};
use super::error::LoadError;
use super::host_fns;
use super::instance::{Instance, NewError};
use super::nats::Nats;
use super::state::{HostState, PayloadLimit};
use crate::config::{Isolation, PluginConfig, RolloutConfig};

/// Everything the host needs to know to run a plugin, independent of its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    pub path: PathBuf,
    pub memory: u64,
    pub timeout: Duration,
    pub fuel: Option<u64>,
    /// Reuse instances across messages, or make a fresh one for each.
    pub isolation: Isolation,
    pub publish: Vec<String>,
    /// Key-value buckets the plugin may use.
    pub kv: Vec<String>,
    /// Subject patterns the plugin may send requests to.
    pub request: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The `[plugins.NAME.config]` table, encoded as a MessagePack map for `init`.
    pub config: Vec<u8>,
    /// Probation of a new version after a hot reload.
    pub rollout: RolloutConfig,
}

impl PluginSpec {
    /// The one way a spec is made: from a `[plugins.NAME]` table (`invoke`
    /// builds such a table from its flags). Fails only if the `config` table
    /// cannot be encoded for `init`.
    pub fn from_config(name: &str, config: &PluginConfig) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            path: config.path.get_ref().clone(),
            memory: config.memory.as_u64(),
            timeout: config.timeout,
            fuel: config.fuel,
            isolation: config.isolation,
            rollout: config.rollout.clone(),
            publish: config.publish.clone(),
            kv: config.kv.iter().map(|bucket| bucket.get_ref().clone()).collect(),
            request: config.request.clone(),
            env: config.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            config: switchyard_abi::encode(&config.config)?,
        })
    }
}

/// One compiled, checked version of a plugin. Cheap to share; instances hold an
/// `Arc` of the version they were made from.
pub struct Plugin {
    pub spec: PluginSpec,
    /// First 12 hex digits of the SHA-256 of the module file: the version's name.
    pub hash: String,
    pub loaded_at: SystemTime,
    pub(super) name: Arc<str>,
    pub(super) allow: Arc<[String]>,
    /// Buckets it may use and subjects it may send requests to: shared by its
    /// instances, like `allow`.
    pub(super) kv_allow: Arc<[String]>,
    pub(super) request_allow: Arc<[String]>,
    pub(super) pre: InstancePre<HostState>,
    pub(super) has_init: bool,
    /// Whether the module decodes positional messages (`features::POSITIONAL_MESSAGE`),
    /// learnt from its first instance before the version serves anything.
    pub(super) positional: AtomicBool,
    /// Whether the module handles batches (`features::BATCH` and the export), learnt likewise.
    pub(super) batch: AtomicBool,
    /// The runtime's, so a limit learnt after the load still applies.
    pub(super) max_payload: PayloadLimit,
    /// The runtime's key-value stores (open once the daemon is connected).
    pub(super) nats: Arc<Nats>,
    /// Log lines per second, shared by all instances of this version.
    pub(super) log_rate: Arc<governor::DefaultDirectRateLimiter>,
    _ticker: Arc<TickerGuard>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("hash", &self.hash).finish_non_exhaustive()
    }
}

impl Plugin {
    /// Load and check a plugin file. Returns the version and the instance that
    /// proved it works (init accepted the config), ready for the pool.
    pub async fn load(runtime: &Runtime, spec: PluginSpec) -> Result<(Arc<Plugin>, Instance), LoadError> {
        let plugin = spec.name.clone();
        let path = spec.path.display().to_string();
        let bytes =
            tokio::fs::read(&spec.path).await.map_err(|source| LoadError::Read { plugin: plugin.clone(), path: path.clone(), source })?;
        let limit = runtime.limits.max_module_size;
        if bytes.len() as u64 > limit.as_u64() {
            let size = bytesize::ByteSize(bytes.len() as u64);
            return Err(LoadError::BadModule {
                plugin,
                reason: format!("`{path}` is {size}, more than `host.max_module_size` ({limit}): not compiled"),
            });
        }
        check_magic(&bytes).map_err(|reason| LoadError::NotWasm { plugin: plugin.clone(), path: path.clone(), reason })?;

        let engine = runtime
            .engine(spec.fuel.is_some(), spec.isolation)
            .map_err(|err| LoadError::BadModule { plugin: plugin.clone(), reason: format!("{err:#}") })?;
        // Hashing, compiling (tens to hundreds of milliseconds, or a child
        // process: compiler.rs), linking and building the memory image all take
        // a core: keep them off the async workers, which may be serving messages
        // during a hot reload.
        let bytes = Arc::new(bytes);
        let hash = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || content_hash(&bytes))
                .await
                .map_err(|err| LoadError::BadModule { plugin: plugin.clone(), reason: format!("hashing task failed: {err}") })?
        };
        // A limit stopped the compiler: the module may be valid wasm, just too costly.
        let not_compiled = |err: anyhow::Error| match err.downcast_ref::<LimitHit>() {
            Some(limit) => LoadError::BadModule { plugin: plugin.clone(), reason: format!("cannot compile `{path}`: {limit}") },
            None => LoadError::NotWasm { plugin: plugin.clone(), path: path.clone(), reason: format!("{err:#}") },
        };
        let kind = (spec.fuel.is_some(), spec.isolation);
        let module = super::cache::compile(runtime, &engine, kind, &hash, bytes).await.map_err(not_compiled)?;
        let name = plugin.clone();
        let Prepared { pre, has_init } = tokio::task::spawn_blocking(move || prepare(&module, &name))
            .await
            .map_err(|err| LoadError::BadModule { plugin: plugin.clone(), reason: format!("linking task failed: {err}") })??;

        let version = Arc::new(Plugin {
            name: spec.name.as_str().into(),
            allow: spec.publish.clone().into(),
            kv_allow: spec.kv.clone().into(),
            request_allow: spec.request.clone().into(),
            spec,
            hash,
            loaded_at: SystemTime::now(),
            pre,
            has_init,
            positional: AtomicBool::new(false),
            batch: AtomicBool::new(false),
            max_payload: runtime.max_payload.clone(),
            nats: runtime.nats.clone(),
            log_rate: super::log_budget::LogBudget::rate(),
            _ticker: runtime.ticker.clone(),
        });
        let refused = |err| match err {
            NewError::Refused(reason) => LoadError::InitRefused { plugin: plugin.clone(), reason },
            NewError::Call(call) => LoadError::Call { plugin: plugin.clone(), call },
        };
        let mut instance = Instance::instantiate(version.clone()).await.map_err(refused)?;
        let found = instance.abi_version().await.map_err(|call| LoadError::Call { plugin: plugin.clone(), call })?;
        if found != i64::from(ABI_VERSION) {
            return Err(LoadError::AbiVersion { plugin, found, expected: ABI_VERSION });
        }
        let features = instance.abi_features().await.map_err(|call| LoadError::Call { plugin: plugin.clone(), call })?;
        version.positional.store(features & features::POSITIONAL_MESSAGE != 0, Ordering::Relaxed);
        version.batch.store(features & features::BATCH != 0 && instance.exports_batch(), Ordering::Relaxed);
        instance.init().await.map_err(refused)?;
        Ok((version, instance))
    }
}

/// A compiled, linked module, ready to instantiate.
struct Prepared {
    pre: InstancePre<HostState>,
    has_init: bool,
}

/// The blocking part of a load after compiling: check the exports, link, and
/// build the copy-on-write memory image that instances start from.
fn prepare(module: &Module, plugin: &str) -> Result<Prepared, LoadError> {
    let bad = |reason: String| LoadError::BadModule { plugin: plugin.to_owned(), reason };
    let has_init = check_exports(module).map_err(bad)?;
    check_imports(module).map_err(bad)?;
    let mut linker = Linker::new(module.engine());
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut HostState| &mut state.wasi)
        .and_then(|()| host_fns::add_to_linker(&mut linker))
        .map_err(|err| bad(format!("linker setup: {err:#}")))?;
    let pre = linker.instantiate_pre(module).map_err(|err| bad(format!("{err:#}")))?;
    module.initialize_copy_on_write_image().map_err(|err| bad(format!("building the memory image: {err:#}")))?;
    Ok(Prepared { pre, has_init })
}

/// The version name of a module file: the first 12 hex digits of its SHA-256.
/// Hashed on a blocking thread: a reload checks every plugin file this way.
pub async fn file_hash(path: &std::path::Path) -> std::io::Result<String> {
    let bytes = tokio::fs::read(path).await?;
    tokio::task::spawn_blocking(move || content_hash(&bytes)).await.map_err(std::io::Error::other)
}

fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn check_magic(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', ..]) => {
            Err("it is a wasm component or an unsupported binary version; build a core module for wasm32-wasip1".into())
        }
        _ => Err("the file does not start with the wasm magic bytes".into()),
    }
}

/// The ABI's exports with their exact types (`functions::EXPORTS`); returns whether `init` exists.
fn check_exports(module: &Module) -> Result<bool, String> {
    let mut has_init = false;
    for function in functions::EXPORTS {
        let exported = match module.get_export(function.name) {
            Some(ExternType::Func(ty)) => {
                check_type(module, &function, &ty).map_err(|want| format!("export `{}` has type {ty}, expected {want}", function.name))?;
                true
            }
            Some(_) => return Err(format!("export `{}` is not a function", function.name)),
            None if function.required => {
                return Err(format!("module does not export `{}`; was it built with the switchyard-sdk handler macro?", function.name));
            }
            None => false,
        };
        has_init |= exported && function.name == names::INIT;
    }
    if !matches!(module.get_export(names::MEMORY), Some(ExternType::Memory(_))) {
        return Err(format!("module does not export its memory as `{}`", names::MEMORY));
    }
    Ok(has_init)
}

/// The module's imports from the host's module are functions of `functions::IMPORTS` with their
/// exact types. (WASI's are left to the linker.) Checked here so the refusal names the ABI.
fn check_imports(module: &Module) -> Result<(), String> {
    for import in module.imports().filter(|import| import.module() == IMPORT_MODULE) {
        let name = import.name();
        let Some(function) = functions::IMPORTS.iter().find(|function| function.name == name) else {
            let known: Vec<_> = functions::IMPORTS.iter().map(|function| format!("`{}`", function.name)).collect();
            return Err(format!("import `{IMPORT_MODULE}.{name}` is not a host function of ABI v{ABI_VERSION} ({})", known.join(", ")));
        };
        let ExternType::Func(ty) = import.ty() else {
            return Err(format!("import `{IMPORT_MODULE}.{name}` is not a function"));
        };
        check_type(module, function, &ty).map_err(|want| format!("import `{IMPORT_MODULE}.{name}` has type {ty}, expected {want}"))?;
    }
    Ok(())
}

/// Whether `ty` is the table's signature of `function`; `Err` holds that signature.
fn check_type(module: &Module, function: &Function, ty: &FuncType) -> Result<(), FuncType> {
    let want = FuncType::new(module.engine(), function.params.iter().map(wasm_type), function.results.iter().map(wasm_type));
    if FuncType::eq(ty, &want) { Ok(()) } else { Err(want) }
}

fn wasm_type(ty: &functions::ValType) -> ValType {
    match ty {
        functions::ValType::I32 => ValType::I32,
        functions::ValType::I64 => ValType::I64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Engine;

    /// A module exporting `exports` (name, wasm signature) and memory, importing `imports`.
    fn module(exports: &[(&str, &str)], imports: &[(&str, &str)]) -> Module {
        let imports: String = imports.iter().map(|(name, sig)| format!("(import \"{IMPORT_MODULE}\" \"{name}\" (func {sig}))")).collect();
        let exports: String = exports.iter().map(|(name, sig)| format!("(func (export \"{name}\") {sig} unreachable)")).collect();
        let wat = format!("(module {imports} (memory (export \"memory\") 1) {exports})");
        Module::new(&Engine::default(), wat::parse_str(wat).expect("valid wat")).expect("compiles")
    }

    /// The table's signature in WAT.
    fn wat(function: &Function) -> String {
        let types = |types: &[functions::ValType]| {
            types.iter().map(|ty| if *ty == functions::ValType::I32 { " i32" } else { " i64" }).collect::<String>()
        };
        format!("(param{}) (result{})", types(function.params), types(function.results))
    }

    #[test]
    fn a_module_with_the_tables_signatures_passes() {
        let exports: Vec<_> = functions::EXPORTS.iter().map(|f| (f.name, wat(f))).collect();
        let imports: Vec<_> = functions::IMPORTS.iter().map(|f| (f.name, wat(f))).collect();
        fn borrowed<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
            list.iter().map(|(name, sig)| (*name, sig.as_str())).collect()
        }
        let module = module(&borrowed(&exports), &borrowed(&imports));
        assert_eq!(check_exports(&module), Ok(true));
        assert_eq!(check_imports(&module), Ok(()));
    }

    #[test]
    fn mistyped_missing_or_unknown_functions_are_named() {
        let required = [("switchyard_abi_version", "(result i32)"), ("switchyard_alloc", "(param i32) (result i32)")];
        let missing = module(&required, &[]);
        assert_eq!(
            check_exports(&missing).err().as_deref(),
            Some("module does not export `switchyard_handle`; was it built with the switchyard-sdk handler macro?")
        );
        let handle = ("switchyard_handle", "(param i32 i32) (result i64)");
        let bad_free = module(&[required[0], required[1], handle, ("switchyard_free", "(param i32)")], &[]);
        assert_eq!(
            check_exports(&bad_free).err().as_deref(),
            Some("export `switchyard_free` has type (type (func (param i32))), expected (type (func (param i32 i32)))")
        );
        let minimal = [required[0], required[1], handle];
        assert_eq!(check_exports(&module(&minimal, &[])), Ok(false), "init is optional");
        let unknown = module(&minimal, &[("sleep", "(param i32)")]);
        assert_eq!(
            check_imports(&unknown).err().as_deref(),
            Some(
                "import `switchyard.sleep` is not a host function of ABI v1 (`publish`, `log`, `begin_message`, `kv_get`, `kv_put`, `kv_create`, `kv_update`, `kv_delete`, `kv_keys`, `request`, `take_result`)"
            )
        );
        let bad_log = module(&minimal, &[("log", "(param i32 i32) (result i32)")]);
        assert_eq!(
            check_imports(&bad_log).err().as_deref(),
            Some(
                "import `switchyard.log` has type (type (func (param i32 i32) (result i32))), expected (type (func (param i32 i32 i32) (result i32)))"
            )
        );
    }

    /// The SDK generates its exports and imports from the same table; a plugin built with it
    /// (by `make plugins`) must pass these checks and export every function of the table.
    #[test]
    fn a_plugin_built_with_the_sdk_matches_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/release/noop.wasm");
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipped: {} is not built (`make plugins`)", path.display());
            return;
        };
        let module = Module::new(&Engine::default(), bytes).expect("compiles");
        assert_eq!(check_exports(&module), Ok(true));
        assert_eq!(check_imports(&module), Ok(()));
        for function in functions::EXPORTS {
            assert!(module.get_export(function.name).is_some(), "the SDK does not export `{}`", function.name);
        }
    }
}
