//! Hand-made wasm modules that are wrong in one precise way, for sandbox tests.

use std::path::{Path, PathBuf};

/// Exports everything but `switchyard_handle`.
pub const MISSING_HANDLE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024))"#;

/// A complete module that declares ABI version 2.
pub const ABI_V2: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 2)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "switchyard_handle") (param i32 i32) (result i64) i64.const 0))"#;

/// Write `wat` compiled to `dir/name.wasm`.
pub fn write(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let bytes = wat::parse_str(wat).expect("valid wat");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write module");
    path
}

/// A file named .wasm that is not wasm.
pub fn write_not_wasm(dir: &Path) -> PathBuf {
    let path = dir.join("notwasm.wasm");
    std::fs::write(&path, "this is not a wasm module\n").expect("write file");
    path
}
