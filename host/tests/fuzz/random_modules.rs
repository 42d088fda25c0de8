//! Random valid modules (`wasm-smith`), plain and shaped like plugins.

use super::*;

/// Limits that keep generated modules small and quick to compile, with the
/// proposals this host's wasmtime supports (`any_proposal` also turns on the
/// rest, which the loader must refuse with a message).
fn smith_config(any_proposal: bool) -> wasm_smith::Config {
    wasm_smith::Config {
        max_funcs: 12,
        max_instructions: 60,
        max_types: 16,
        max_type_size: 100,
        max_globals: 8,
        max_imports: 8,
        max_exports: 12,
        max_data_segments: 4,
        max_element_segments: 4,
        max_elements: 16,
        max_tables: 2,
        max_table_elements: 1000,
        max_memories: 1,
        max_memory32_bytes: 1 << 20,
        max_memory64_bytes: 1 << 20,
        max_tags: 4,
        memory64_enabled: any_proposal,
        reference_types_enabled: any_proposal,
        gc_enabled: any_proposal,
        exceptions_enabled: any_proposal,
        threads_enabled: any_proposal,
        wide_arithmetic_enabled: any_proposal,
        custom_page_sizes_enabled: any_proposal,
        compact_imports_enabled: any_proposal,
        shared_everything_threads_enabled: false,
        custom_descriptors_enabled: false,
        ..wasm_smith::Config::default()
    }
}

fn smith(config: wasm_smith::Config, seed: &[u8]) -> Option<Vec<u8>> {
    let mut input = arbitrary::Unstructured::new(seed);
    wasm_smith::Module::new(config, &mut input).ok().map(|module| module.to_bytes())
}

/// Valid modules of any shape are refused (none exports the ABI) with a message.
#[test]
fn random_modules_are_refused_with_a_message() {
    let host = Host::new();
    check(config(4), (any::<bool>(), bytes_up_to(2048)), |(any_proposal, seed)| {
        let Some(wasm) = smith(smith_config(any_proposal), &seed) else { return Ok(()) };
        let loaded = host.load(host.spec(&wasm))?;
        prop_assert!(loaded.is_err(), "a module without the ABI's exports loaded");
        Ok(())
    });
}

/// The exports of a plugin (optional ones as chosen) for wasm-smith to give random bodies.
fn plugin_shape(init: bool, features: bool, free: bool, initialize: bool) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
        (memory (export "memory") 1)
        (func (export "switchyard_abi_version") (result i32) unreachable)
        (func (export "switchyard_alloc") (param i32) (result i32) unreachable)
        (func (export "switchyard_handle") (param i32 i32) (result i64) unreachable)"#,
    );
    if init {
        wat.push_str(r#"(func (export "switchyard_init") (param i32 i32) (result i64) unreachable)"#);
    }
    if features {
        wat.push_str(r#"(func (export "switchyard_abi_features") (result i32) unreachable)"#);
    }
    if free {
        wat.push_str(r#"(func (export "switchyard_free") (param i32 i32) unreachable)"#);
    }
    if initialize {
        wat.push_str(r#"(func (export "_initialize") unreachable)"#);
    }
    wat.push(')');
    wat::parse_str(wat).expect("valid wat")
}

/// What a plugin may import. No WASI call that sleeps or waits: it would only
/// make cases slow (every guest call is bounded by a timer too: see the test of
/// a sleep in `_initialize` at the end).
const PLUGIN_IMPORTS: &str = r#"(module
  (import "switchyard" "publish" (func (param i32 i32) (result i32)))
  (import "switchyard" "log" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#;

/// Replace the body behind export `name` by `func` (a function named `$id`),
/// working on the module's text: the export then names the new function, added
/// last so no other index moves.
fn replace_export(text: &mut String, name: &str, id: &str, func: &str) {
    let export = format!("(export \"{name}\" (func ");
    if let Some(start) = text.find(&export) {
        let end = start + text[start..].find("))").expect("an export closes") + 2;
        text.replace_range(start..end, &format!("(export \"{name}\" (func ${id}))"));
        let last = text.rfind(')').expect("a module closes");
        text.insert_str(last, &format!("\n  {func}\n"));
    }
}

#[derive(Debug, Default)]
struct Seen {
    loaded: usize,
    refused: usize,
    calls_ok: usize,
    calls_failed: usize,
}

/// Modules with the plugin's exports and random code behind them (an ABI
/// version of 1 and a sane allocator most of the time, to get further): they
/// load or are refused with a message, and every call ends, within its time
/// or fuel, with an outcome or an error with a message.
#[test]
fn random_plugins_never_break_the_host() {
    let host = Host::new();
    let imports = wat::parse_str(PLUGIN_IMPORTS).expect("valid wat");
    let seen = Mutex::new(Seen::default());
    let shape = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    let knobs = (0_u8..8, 0_u8..4, any::<bool>());
    check(config(4), (shape, knobs, bytes_up_to(3000), vec(bytes_up_to(64), 1..4)), |(shape, knobs, seed, payloads)| {
        let (init, features, free, initialize) = shape;
        let (sanity, limits, fresh) = knobs;
        let config = wasm_smith::Config {
            exports: Some(plugin_shape(init, features, free, initialize)),
            available_imports: Some(imports.clone()),
            // The exported one is made whatever this says; no other.
            max_memories: 0,
            ..smith_config(false)
        };
        let Some(wasm) = smith(config, &seed) else { return Ok(()) };
        let mut text = wasmprinter::print_bytes(&wasm).map_err(|err| TestCaseError::fail(format!("wasmprinter: {err}")))?;
        if sanity != 0 {
            replace_export(&mut text, "switchyard_abi_version", "fuzz_version", "(func $fuzz_version (result i32) i32.const 1)");
        }
        if sanity > 2 {
            replace_export(&mut text, "switchyard_alloc", "fuzz_alloc", "(func $fuzz_alloc (param i32) (result i32) i32.const 1024)");
        }
        if sanity > 4 {
            replace_export(&mut text, "switchyard_init", "fuzz_init", "(func $fuzz_init (param i32 i32) (result i64) i64.const 0)");
            replace_export(&mut text, "_initialize", "fuzz_initialize", "(func $fuzz_initialize)");
            replace_export(&mut text, "switchyard_abi_features", "fuzz_features", "(func $fuzz_features (result i32) i32.const 0)");
        }
        let wasm = wat::parse_str(&text).map_err(|err| TestCaseError::fail(format!("{err}\n{text}")))?;
        let mut spec = host.spec(&wasm);
        spec.fuel = (limits != 0).then_some(5_000_000);
        spec.isolation = if fresh { Isolation::Fresh } else { Isolation::Pooled };
        let loaded = host.load(spec)?;
        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Ok((plugin, first)) = loaded else {
            seen.refused += 1;
            return Ok(());
        };
        seen.loaded += 1;
        let pool = Pool::new(plugin, first, 1);
        for payload in payloads {
            match host.call(&pool, &message(&payload))? {
                Ok(_) => seen.calls_ok += 1,
                Err(_) => seen.calls_failed += 1,
            }
        }
        Ok(())
    });
    eprintln!("random plugins: {:?}", seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
}
