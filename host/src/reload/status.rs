//! `switchyard status`: what a running host serves, with which plugin versions,
//! since when, and how its last reload went — the answer's shape and its text.
//! The daemon fills it in (`daemon::status`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::ReloadReport;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// `hostname:pid`, to tell several hosts apart.
    pub host: String,
    pub url: String,
    /// Unix seconds.
    pub started_at: u64,
    pub routes: Vec<RouteStatus>,
    pub plugins: Vec<PluginStatus>,
    pub last_reload: Option<ReloadReport>,
    pub counters: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteStatus {
    pub name: String,
    pub serves: String,
    pub plugin: String,
    /// The version this route's new messages go to (after any rollback).
    pub version: String,
    pub rollbacks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub version: String,
    pub path: String,
    /// Unix seconds.
    pub loaded_at: u64,
}

fn show_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

impl Status {
    /// The text `switchyard status` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "host {} on {}, up since {}", self.host, self.url, show_time(self.started_at));
        for route in &self.routes {
            let _ = writeln!(
                out,
                "  route {}: {} -> {} {} (rollbacks: {})",
                route.name, route.serves, route.plugin, route.version, route.rollbacks
            );
        }
        for plugin in &self.plugins {
            let _ =
                writeln!(out, "  plugin {} {} loaded {} from {}", plugin.name, plugin.version, show_time(plugin.loaded_at), plugin.path);
        }
        match &self.last_reload {
            Some(report) => {
                let _ = writeln!(out, "  last reload {} ({}): {}", show_time(report.at), report.cause, report.summary());
            }
            None => out.push_str("  no reload yet\n"),
        }
        let counters: Vec<String> = self.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  {}", counters.join(" "));
        out
    }
}
