//! `switchyard new` as a new user runs it, from an empty folder: the four
//! commands its README names pass at once — `switchyard new fraud-check`,
//! `cargo test`, `cargo build --release --target wasm32-wasip1` and
//! `switchyard test` — against the SDK of this repository.

use std::path::Path;
use std::time::Duration;

use switchyard_tests::host::binary;
use switchyard_tests::within;

/// Building a new crate's dependencies from nothing, on two busy cores.
const BUILD: Duration = Duration::from_secs(900);

/// Run `program ARGS` in `dir`: whether it succeeded, and what it printed.
async fn run(dir: &Path, program: &Path, args: &[&str]) -> (bool, String) {
    let command = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        // The crate builds in its own target folder, as it would for its author.
        .env_remove("CARGO_TARGET_DIR")
        .output();
    let output = within(BUILD, "the command", command).await.expect("run it");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn a_new_plugin_tests_builds_and_passes_its_cases_at_once() {
    let cargo = std::env::var_os("CARGO").map(std::path::PathBuf::from).unwrap_or_else(|| "cargo".into());
    let empty = tempfile::tempdir().expect("temp dir");
    let (ok, out) = run(empty.path(), &binary(), &["new", "fraud-check"]).await;
    assert!(ok && out.contains("created `fraud-check` (event template)"), "{out}");
    let crate_dir = empty.path().join("fraud-check");

    let (ok, out) = run(&crate_dir, &cargo, &["test"]).await;
    assert!(ok && out.contains("test result: ok. 2 passed"), "cargo test:\n{out}");
    let (ok, out) = run(&crate_dir, &cargo, &["build", "--release", "--target", "wasm32-wasip1"]).await;
    assert!(ok, "cargo build:\n{out}");
    assert!(crate_dir.join("target/wasm32-wasip1/release/fraud_check.wasm").is_file());
    let (ok, out) = run(&crate_dir, &binary(), &["test"]).await;
    assert!(ok && out.ends_with("test result: ok. 2 passed, 0 failed\n"), "switchyard test:\n{out}");

    // Nothing is overwritten; a name that cannot name a crate and its subjects is refused.
    let (ok, out) = run(empty.path(), &binary(), &["new", "fraud-check"]).await;
    assert!(!ok && out.contains("`fraud-check` already exists here: nothing was written"), "{out}");
    let (ok, out) = run(empty.path(), &binary(), &["new", "fraud.check"]).await;
    assert!(!ok && out.contains("`fraud.check` is not a plugin name"), "{out}");
}

/// The other two templates' handlers pass their native tests and their cases
/// through the built module (sharing one target folder, to build once).
#[tokio::test]
async fn the_request_and_envelope_templates_pass_too() {
    let cargo = std::env::var_os("CARGO").map(std::path::PathBuf::from).unwrap_or_else(|| "cargo".into());
    let empty = tempfile::tempdir().expect("temp dir");
    for template in ["request", "envelope"] {
        let name = format!("try-{template}");
        let (ok, out) = run(empty.path(), &binary(), &["new", &name, "--template", template]).await;
        assert!(ok, "{out}");
        let crate_dir = empty.path().join(&name);
        let target = empty.path().join("target");
        let target = target.to_str().expect("utf-8");
        let (ok, out) = run(&crate_dir, &cargo, &["test", "--target-dir", target]).await;
        assert!(ok && out.contains("test result: ok. 2 passed"), "{template}: cargo test:\n{out}");
        let (ok, out) = run(&crate_dir, &cargo, &["build", "--release", "--target", "wasm32-wasip1", "--target-dir", target]).await;
        assert!(ok, "{template}: cargo build:\n{out}");
        let module = format!("try_{template}.wasm");
        std::fs::create_dir_all(crate_dir.join("target/wasm32-wasip1/release")).expect("mkdir");
        std::fs::copy(
            empty.path().join("target/wasm32-wasip1/release").join(&module),
            crate_dir.join("target/wasm32-wasip1/release").join(&module),
        )
        .expect("the module");
        let (ok, out) = run(&crate_dir, &binary(), &["test"]).await;
        assert!(ok && out.ends_with("test result: ok. 2 passed, 0 failed\n"), "{template}: switchyard test:\n{out}");
    }
}
