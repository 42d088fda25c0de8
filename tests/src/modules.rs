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

/// `wasm` with a custom section appended: a different file (and content hash)
/// that behaves the same — a new "version" for reload tests.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Replace `path` the way deploy tools do: write a temporary file, then rename.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A valid plugin (it acks) padded with `functions` small functions that
/// nothing calls: cheap to write, slow and memory-hungry to compile (cranelift
/// compiles every one). 100,000 took 9–28 s and 620 MB before compilation had
/// limits.
pub fn compile_bomb(functions: usize) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\81\a4kind\a3ack")
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "switchyard_handle") (param i32 i32) (result i64) i64.const 68719476746)
"#,
    );
    for i in 0..functions {
        wat.push_str(&format!(
            "  (func (param i32) (result i32) local.get 0 i32.const {i} i32.mul local.get 0 i32.add i32.const 3 i32.rotl)\n"
        ));
    }
    wat.push(')');
    wat::parse_str(wat).expect("valid wat")
}
