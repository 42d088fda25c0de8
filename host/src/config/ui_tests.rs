//! Snapshot tests in the style of Spin's `manifest/tests/ui.rs`: every
//! `tests/config-ui/NAME.toml` is loaded and the rendered problems (or `ok`)
//! must equal `NAME.expected` exactly. `SWITCHYARD_BLESS=1 cargo test` rewrites
//! the `.expected` files after an intended change; review the diff.

use std::path::{Path, PathBuf};

use super::load;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("config-ui")
}

/// What `switchyard check` would print, with the case directory stripped so the
/// snapshot does not depend on where the repository is checked out.
fn render(case: &Path, dir: &Path) -> String {
    let text = match load(case) {
        Ok(_) => "ok".to_string(),
        Err(problems) => problems.to_string(),
    };
    text.replace(&format!("{}/", dir.display()), "") + "\n"
}

#[test]
fn config_ui_snapshots() -> Result<(), Box<dyn std::error::Error>> {
    let dir = cases_dir();
    let bless = std::env::var_os("SWITCHYARD_BLESS").is_some_and(|v| v == "1");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    cases.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    cases.sort();
    // Guard against a moved directory turning this into a test that cannot fail.
    assert!(cases.len() >= 10, "expected the config-ui cases in {}, found {}", dir.display(), cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let actual = render(case, &dir);
        let expected_path = case.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual)?;
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!("{}:\n--- expected\n{expected}--- actual\n{actual}", case.display())),
            Err(e) => failures.push(format!("{}: cannot read {}: {e}", case.display(), expected_path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} config-ui snapshots differ (SWITCHYARD_BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

/// docs/CONFIG.md's complete example is `valid.toml`, so the documentation shows
/// a config that is known to load.
#[test]
fn config_doc_example_is_the_valid_case() -> Result<(), Box<dyn std::error::Error>> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIG.md"))?;
    let section = doc.split("## A complete example").nth(1).ok_or("no complete example in CONFIG.md")?;
    let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).ok_or("no toml block in the complete example")?;
    let valid = std::fs::read_to_string(cases_dir().join("valid.toml"))?;
    assert_eq!(example, valid, "docs/CONFIG.md's example differs from tests/config-ui/valid.toml");
    Ok(())
}
