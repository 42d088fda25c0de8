//! The plan from a running state to a new config, without NATS or plugin files:
//! startup from nothing, a new plugin file, a changed route, removals, and a
//! plugin version that does not load.

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::{Plan, RouteAction, Running, Version, diff};
use crate::config::{self, Config};
use crate::plugin::PluginSpec;

const BASE: &str = r#"
[[streams]]
name = "JOBS"
subjects = ["jobs.>"]

[plugins.a]
path = "a.wasm"

[plugins.b]
path = "b.wasm"

[[routes]]
name = "jobs"
plugin = "a"
stream = "JOBS"

[[routes]]
name = "ask"
plugin = "b"
subjects = ["ask.*"]
"#;

fn parse(text: &str) -> Config {
    match config::parse(text, Path::new("runtime.toml")) {
        Ok(config) => config,
        Err(problems) => panic!("test config does not parse:\n{problems}"),
    }
}

/// A host that applied `text`: every plugin loaded with hash `h-<name>`, every route running.
struct Applied {
    config: Config,
    specs: BTreeMap<String, PluginSpec>,
    hashes: BTreeMap<String, String>,
}

impl Applied {
    fn new(text: &str) -> Self {
        let config = parse(text);
        let mut specs = BTreeMap::new();
        for (name, plugin) in &config.plugins {
            specs.insert(name.clone(), PluginSpec::from_config(name, plugin).expect("spec"));
        }
        let hashes = specs.keys().map(|name| (name.clone(), format!("h-{name}"))).collect();
        Self { config, specs, hashes }
    }

    fn running(&self) -> Running<'_> {
        Running {
            config: Some(&self.config),
            plugins: self.specs.iter().map(|(name, spec)| (name.as_str(), Version { spec, hash: &self.hashes[name] })).collect(),
            routes: self.config.routes.iter().map(|route| (route.name.get_ref().as_str(), route)).collect(),
        }
    }

    /// The plan to `text` when the plugin files on disk are unchanged.
    fn plan_to(&self, text: &str) -> Plan {
        diff(&self.running(), &parse(text), &self.hashes)
    }
}

fn actions(plan: &Plan) -> Vec<(&str, RouteAction)> {
    plan.routes.iter().map(|step| (step.name.as_str(), step.action)).collect()
}

fn loads(plan: &Plan) -> Vec<(&str, Option<&str>)> {
    plan.plugins.iter().map(|step| (step.name.as_str(), step.previous.as_deref())).collect()
}

#[test]
fn startup_is_a_plan_from_nothing() {
    let plan = diff(&Running::default(), &parse(BASE), &BTreeMap::new());
    assert_eq!(loads(&plan), [("a", None), ("b", None)]);
    assert!(plan.plugins.iter().all(|step| step.spec.is_ok()));
    assert_eq!(actions(&plan), [("jobs", RouteAction::Add), ("ask", RouteAction::Add)]);
    assert_eq!(plan.streams.iter().map(|s| s.name.get_ref().as_str()).collect::<Vec<_>>(), ["JOBS"]);
    assert!(!plan.needs_restart, "nothing ran before: no restart note");
    assert!(plan.removed_routes.is_empty() && plan.removed_plugins.is_empty());
}

#[test]
fn the_same_config_and_files_change_nothing() {
    let plan = Applied::new(BASE).plan_to(BASE);
    assert!(plan.plugins.is_empty() && plan.streams.is_empty() && !plan.needs_restart);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Keep)]);
    assert!(plan.removed_routes.is_empty() && plan.removed_plugins.is_empty());
}

#[test]
fn a_new_plugin_file_is_swapped_into_its_routes() {
    let applied = Applied::new(BASE);
    let mut on_disk = applied.hashes.clone();
    on_disk.insert("a".into(), "h-a2".into());
    let plan = diff(&applied.running(), &parse(BASE), &on_disk);
    assert_eq!(loads(&plan), [("a", Some("h-a"))]);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Swap), ("ask", RouteAction::Keep)]);

    // A file that cannot be hashed (gone, unreadable) is loaded again, to report why.
    on_disk.remove("b");
    let plan = diff(&applied.running(), &parse(BASE), &on_disk);
    assert_eq!(loads(&plan), [("a", Some("h-a")), ("b", Some("h-b"))]);
}

#[test]
fn new_plugin_settings_are_a_new_version() {
    let plan = Applied::new(BASE).plan_to(&BASE.replace("path = \"b.wasm\"", "path = \"b.wasm\"\ntimeout = \"9s\""));
    assert_eq!(loads(&plan), [("b", Some("h-b"))]);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Swap)]);
}

#[test]
fn a_changed_route_restarts_and_the_others_keep_running() {
    let plan = Applied::new(BASE).plan_to(&BASE.replace("subjects = [\"ask.*\"]", "subjects = [\"ask.*\"]\nconcurrency = 2"));
    assert!(plan.plugins.is_empty(), "no plugin changed");
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Restart)]);
}

#[test]
fn a_changed_route_with_a_new_plugin_version_restarts_on_it() {
    let changed = BASE.replace("subjects = [\"ask.*\"]", "subjects = [\"ask.*\"]\nconcurrency = 2");
    let plan = Applied::new(BASE).plan_to(&changed.replace("path = \"b.wasm\"", "path = \"b2.wasm\""));
    assert_eq!(loads(&plan), [("b", Some("h-b"))]);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Restart)]);
}

#[test]
fn removed_routes_and_plugins_are_stopped_and_forgotten() {
    let without_ask = BASE.replace("[plugins.b]\npath = \"b.wasm\"\n", "");
    let without_ask = &without_ask[..without_ask.find("[[routes]]\nname = \"ask\"").expect("ask route")];
    let plan = Applied::new(BASE).plan_to(without_ask);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep)]);
    assert_eq!(plan.removed_routes, ["ask"]);
    assert_eq!(plan.removed_plugins, ["b"]);
    assert!(plan.plugins.is_empty());
}

#[test]
fn an_added_route_and_stream_are_started_and_set_up() {
    let more = format!(
        "{BASE}\n[[streams]]\nname = \"MORE\"\nsubjects = [\"more.>\"]\n\n[[routes]]\nname = \"more\"\nplugin = \"a\"\nstream = \"MORE\"\n"
    );
    let plan = Applied::new(BASE).plan_to(&more);
    assert_eq!(plan.streams.iter().map(|s| s.name.get_ref().as_str()).collect::<Vec<_>>(), ["MORE"], "only the new stream");
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Keep), ("more", RouteAction::Add)]);
}

#[test]
fn host_settings_are_noted_for_the_next_restart() {
    let plan = Applied::new(BASE).plan_to(&format!("[host]\nshutdown_timeout = \"3s\"\n{BASE}"));
    assert!(plan.needs_restart);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Keep)]);
}

#[test]
fn a_plugin_that_fails_to_load_at_startup_leaves_its_routes_not_started() {
    let mut plan = diff(&Running::default(), &parse(BASE), &BTreeMap::new());
    plan.not_loaded("a");
    assert_eq!(actions(&plan), [("jobs", RouteAction::NotStarted), ("ask", RouteAction::Add)]);
}

#[test]
fn a_version_that_fails_to_load_on_reload_leaves_the_old_one_serving() {
    let applied = Applied::new(BASE);
    let changed = format!(
        "{}\n[[routes]]\nname = \"extra\"\nplugin = \"a\"\nsubjects = [\"extra.*\"]\n",
        BASE.replace("stream = \"JOBS\"", "stream = \"JOBS\"\nconcurrency = 3")
    );
    let mut on_disk = applied.hashes.clone();
    on_disk.insert("a".into(), "h-broken".into());
    on_disk.insert("b".into(), "h-b2".into());
    let mut plan = diff(&applied.running(), &parse(&changed), &on_disk);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Restart), ("ask", RouteAction::Swap), ("extra", RouteAction::Add)]);
    plan.not_loaded("b");
    // `ask` keeps its version; `a`'s routes are unaffected by `b` failing.
    assert_eq!(actions(&plan), [("jobs", RouteAction::Restart), ("ask", RouteAction::Keep), ("extra", RouteAction::Add)]);
    plan.not_loaded("a");
    // The old version of `a` still runs: its routes restart and start on it.
    assert_eq!(actions(&plan), [("jobs", RouteAction::Restart), ("ask", RouteAction::Keep), ("extra", RouteAction::Add)]);
}

#[test]
fn a_route_moved_to_a_plugin_that_fails_is_not_started_and_the_old_one_runs_on() {
    let moved = format!("{}\n[plugins.c]\npath = \"c.wasm\"\n", BASE.replace("plugin = \"b\"", "plugin = \"c\""));
    let mut plan = Applied::new(BASE).plan_to(&moved);
    assert_eq!(loads(&plan), [("c", None)]);
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::Restart)]);
    plan.not_loaded("c");
    assert_eq!(actions(&plan), [("jobs", RouteAction::Keep), ("ask", RouteAction::NotStarted)]);
    assert!(plan.removed_routes.is_empty(), "`ask` is still configured: not stopped");
}
