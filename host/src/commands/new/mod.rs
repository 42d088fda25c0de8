//! `switchyard new NAME`: a plugin crate that builds for wasm32-wasip1, passes
//! its own native tests, and has a runtime.toml and cases for `switchyard
//! test` — so `cargo test`, `cargo build --release --target wasm32-wasip1` and
//! `switchyard test` pass in it at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Template;

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore.tmpl");
const README: &str = include_str!("templates/README.md.tmpl");

/// A template's handler, runtime.toml, cases, and the subject its README tries.
struct Files {
    lib: &'static str,
    runtime: &'static str,
    cases: &'static str,
    subject: &'static str,
}

fn files(template: Template) -> Files {
    match template {
        Template::Event => Files {
            lib: include_str!("templates/event.rs.tmpl"),
            runtime: include_str!("templates/event.runtime.toml.tmpl"),
            cases: include_str!("templates/event.test.toml.tmpl"),
            subject: "in",
        },
        Template::Request => Files {
            lib: include_str!("templates/request.rs.tmpl"),
            runtime: include_str!("templates/request.runtime.toml.tmpl"),
            cases: include_str!("templates/request.test.toml.tmpl"),
            subject: "quote",
        },
        Template::Envelope => Files {
            lib: include_str!("templates/envelope.rs.tmpl"),
            runtime: include_str!("templates/envelope.runtime.toml.tmpl"),
            cases: include_str!("templates/envelope.test.toml.tmpl"),
            subject: "check",
        },
    }
}

pub(crate) fn run(name: &str, template: Template, sdk: Option<&str>) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let dir = PathBuf::from(name);
    anyhow::ensure!(!dir.exists(), "`{name}` already exists here: nothing was written");
    let (dependency, lock) = match sdk {
        Some(given) if Path::new(given).join("Cargo.toml").is_file() => {
            (path_dependency(Path::new(given))?, repository_lock(Path::new(given)))
        }
        Some(version) => (format!("{version:?}"), None),
        None => {
            let found = this_repository_sdk().context(
                "no switchyard-sdk found around here or this binary: give `--sdk PATH` (the plugin-sdk folder) or `--sdk VERSION`",
            )?;
            (path_dependency(&found)?, repository_lock(&found))
        }
    };
    let template_files = files(template);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &dependency)
            .replace("{{template}}", template.name())
            .replace("{{subject}}", &format!("{name}.{}", template_files.subject))
    };
    let written: [(&str, String); 6] = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(template_files.lib)),
        ("runtime.toml", fill(template_files.runtime)),
        (&format!("{name}.test.toml"), fill(template_files.cases)),
        ("README.md", fill(README)),
        (".gitignore", GITIGNORE.to_owned()),
    ];
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("creating `{name}`"))?;
    for (file, text) in &written {
        std::fs::write(dir.join(file), text).with_context(|| format!("writing `{name}/{file}`"))?;
    }
    // The versions the SDK is tested with, so the first build resolves at once.
    if let Some(lock) = lock {
        std::fs::copy(&lock, dir.join("Cargo.lock")).with_context(|| format!("copying `{}`", lock.display()))?;
    }
    println!("created `{name}` ({} template), with switchyard-sdk = {dependency}", template.name());
    println!("next:\n  cd {name}\n  cargo test\n  cargo build --release --target wasm32-wasip1\n  switchyard test");
    Ok(ExitCode::SUCCESS)
}

/// A crate name that is also a subject token: letters, digits, `-` and `_`,
/// starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    anyhow::ensure!(
        ok,
        "`{name}` is not a plugin name: use letters, digits, `-` and `_`, starting with a letter (it names the crate and its subjects)"
    );
    const RESERVED: [&str; 6] = ["test", "core", "std", "alloc", "self", "crate"];
    anyhow::ensure!(!RESERVED.contains(&name), "`{name}` is reserved by Rust or Cargo: pick another name");
    Ok(())
}

fn path_dependency(sdk: &Path) -> anyhow::Result<String> {
    let sdk = std::path::absolute(sdk)?;
    Ok(format!("{{ path = {:?} }}", sdk.display().to_string()))
}

/// The plugin-sdk folder of the Switchyard repository this is run in, or the
/// one this binary was built from.
fn this_repository_sdk() -> Option<PathBuf> {
    let here = std::env::current_dir().ok();
    let binary = std::env::current_exe().ok();
    let starts = here.into_iter().chain(binary);
    starts
        .flat_map(|start| start.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .map(|dir| dir.join("plugin-sdk"))
        .find(|sdk| is_sdk(sdk))
}

fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.contains("name = \"switchyard-sdk\""))
}

/// The repository's Cargo.lock next to an SDK folder, if any.
fn repository_lock(sdk: &Path) -> Option<PathBuf> {
    Some(sdk.parent()?.join("Cargo.lock")).filter(|lock| lock.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names_and_subject_tokens() {
        assert!(check_name("fraud-check").is_ok());
        assert!(check_name("fraud_check2").is_ok());
        for bad in ["", "2fa", "fraud.check", "fraud check", "a>b", "test"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
