//! `switchyard test [runtime.toml]`: the cases of the `*.test.toml` files next
//! to a runtime.toml (or in `--cases`), run against its plugins and routes
//! without NATS. Output like `cargo test`: a line per case, what differs for
//! each failure, a summary; exit status 1 when a case fails, 2 when the cases
//! or the runtime.toml cannot be used.

mod capture;
mod cases;
mod expect;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use switchyard_abi::kv::MemoryBucket;

use crate::cli::TestFormat;
use crate::config::{self, Problem};
use cases::{Case, Loaded};
use run::Suite;

/// One case's result.
#[derive(Debug, Serialize)]
struct CaseResult {
    file: String,
    name: String,
    passed: bool,
    /// What differs, or why it could not run.
    differences: Vec<String>,
}

pub(crate) async fn run(config_path: &Path, cases_dir: Option<&Path>, format: TestFormat) -> anyhow::Result<ExitCode> {
    capture::install();
    let loaded = match config::load(config_path) {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprint!("{problems}");
            return Ok(ExitCode::from(2));
        }
    };
    let dir = cases_dir.map(Path::to_path_buf).unwrap_or_else(|| config::base_dir(config_path));
    let files = cases::files_in(&dir).map_err(|err| anyhow::anyhow!("reading `{}`: {err}", dir.display()))?;
    anyhow::ensure!(!files.is_empty(), "no *.test.toml files in `{}`", dir.display());
    let mut suite = Suite::new(loaded.config)?;
    let mut problems: Vec<Problem> = Vec::new();
    let mut loaded_files = Vec::new();
    for file in &files {
        match cases::load(file) {
            Ok(loaded) => {
                problems.extend(check(&suite, &loaded));
                loaded_files.push(loaded);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!("error: {} problem(s) in the test cases; nothing was run", problems.len());
        return Ok(ExitCode::from(2));
    }
    let mut results = Vec::new();
    for file in &loaded_files {
        let dir = file.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let file_name = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for case in &file.cases {
            let differences = match suite.run(case, &dir).await {
                Ok((handlings, buckets)) => differences(case, &handlings, &buckets),
                Err(err) => vec![format!("could not run: {err:#}")],
            };
            let result = CaseResult { file: file_name.clone(), name: case.name.clone(), passed: differences.is_empty(), differences };
            if format == TestFormat::Text {
                println!("test {}::{} ... {}", result.file, result.name, if result.passed { "ok" } else { "FAILED" });
            }
            results.push(result);
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    match format {
        TestFormat::Text => print_failures(&results),
        TestFormat::Json => println!("{}", serde_json::json!({ "passed": results.len() - failed, "failed": failed, "cases": results })),
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_failures(results: &[CaseResult]) {
    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        println!("\nfailures:");
        for result in &failed {
            println!("\n---- {}::{} ----", result.file, result.name);
            for line in &result.differences {
                println!("  {line}");
            }
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!("\ntest result: {verdict}. {} passed, {} failed", results.len() - failed.len(), failed.len());
}

/// What the case file asks that cannot be run: a route or plugin that does
/// not exist, a regex that does not compile, `then` without `follow`.
fn check(suite: &Suite, file: &Loaded) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |span: std::ops::Range<usize>, message: String| file.source.problem(span, message);
    for case in &file.cases {
        let name = &case.name;
        match (&case.route, &case.plugin) {
            (Some(route), None) if !suite.has_route(route.get_ref()) => {
                problems.push(at(route.span(), format!("case `{name}`: no route `{}` in the runtime.toml", route.get_ref())));
            }
            (None, Some(plugin)) if !suite.has_plugin(plugin.get_ref()) => {
                problems.push(at(plugin.span(), format!("case `{name}`: no plugin `{}` in the runtime.toml", plugin.get_ref())));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => problems.push(Problem {
                file: file.path.clone(),
                position: None,
                message: format!("case `{name}`: give `route` or `plugin`, one of them"),
            }),
        }
        if !case.then.is_empty() && !case.follow {
            problems.push(at(case.then[0].outcome.span(), format!("case `{name}`: `then` needs `follow = true`")));
        }
        for step in std::iter::once(&case.expect).chain(&case.then) {
            if let Some(route) = step.route.as_ref().filter(|r| !suite.has_route(r.get_ref())) {
                problems.push(at(route.span(), format!("case `{name}`: no route `{}` in the runtime.toml", route.get_ref())));
            }
            for why in expect::bad_patterns(step) {
                problems.push(at(step.outcome.span(), format!("case `{name}`: {why}")));
            }
        }
    }
    problems
}

/// The handlings against `expect`, then `then`, step by step; the buckets
/// against each step's `kv`.
fn differences(case: &Case, handlings: &[run::Handling], buckets: &BTreeMap<String, MemoryBucket>) -> Vec<String> {
    let wanted: Vec<&cases::Expect> = std::iter::once(&case.expect).chain(&case.then).collect();
    let mut diffs = Vec::new();
    for (i, want) in wanted.iter().enumerate() {
        let step = if wanted.len() > 1 { format!("step {} ", i + 1) } else { String::new() };
        let Some(got) = handlings.get(i) else {
            let by = want.route.as_ref().map(|r| format!(" by route `{}`", r.get_ref())).unwrap_or_default();
            diffs.push(format!("{step}expected a handling{by}; none came"));
            continue;
        };
        if let Some(route) = want.route.as_ref().filter(|r| *r.get_ref() != got.route) {
            diffs.push(format!("{step}route: expected `{}`, got `{}`", route.get_ref(), got.route));
            continue;
        }
        diffs.extend(expect::compare(want, got).into_iter().map(|d| format!("{step}{d}")));
        diffs.extend(expect::buckets(&want.kv, buckets).into_iter().map(|d| format!("{step}{d}")));
    }
    for got in handlings.iter().skip(wanted.len()) {
        diffs.push(format!("unexpected handling by `{}`: {} (add a `[[case.then]]` for it)", got.route, got.describe()));
    }
    diffs
}
