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
    // What the route does now and did over the last ten seconds (`daemon::window`
    // defines each figure). Defaulted: a host older than these fields omits them.
    /// Messages being handled now.
    #[serde(default)]
    pub in_flight: u64,
    /// Ends of attempts per second (ack, reply, retry, dead letter, shed, breaker open).
    #[serde(default)]
    pub rate_per_sec: f64,
    /// Share (0–1) of the attempts that called the plugin and did not end in an
    /// ack or a reply; `None` when none called it.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The plugin call's median and 99th percentile, in milliseconds (histogram
    /// bucket upper bounds); `None` without calls.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// "closed", "half-open" or "open"; `None` without `[routes.breaker]`.
    #[serde(default)]
    pub breaker: Option<String>,
    /// JetStream routes: messages in the stream not yet delivered to the
    /// consumer, as last read (`[admin] consumer_info_interval`).
    #[serde(default)]
    pub consumer_pending: Option<u64>,
    /// A new version on trial (canary, shadow or swap on probation).
    #[serde(default)]
    pub trial: Option<crate::plugin::TrialStatus>,
}

impl RouteStatus {
    /// `12.5` msg/s, one decimal.
    pub fn show_rate(&self) -> String {
        format!("{:.1}", self.rate_per_sec)
    }

    /// `2.5%`, or `-` when nothing was handled.
    pub fn show_error_rate(&self) -> String {
        self.error_rate.map_or_else(|| "-".into(), |rate| format!("{:.1}%", rate * 100.0))
    }

    /// `breaker` or `-`.
    pub fn show_breaker(&self) -> &str {
        self.breaker.as_deref().unwrap_or("-")
    }

    /// `consumer_pending` or `-`.
    pub fn show_pending(&self) -> String {
        self.consumer_pending.map_or_else(|| "-".into(), |n| n.to_string())
    }

    /// p50 as `50µs`, `1.6ms`, `3.2s`, or `-`.
    pub fn show_p50(&self) -> String {
        show_ms(self.p50_ms)
    }

    /// p99, like [`RouteStatus::show_p50`].
    pub fn show_p99(&self) -> String {
        show_ms(self.p99_ms)
    }
}

/// A duration in milliseconds as `50µs`, `1.6ms`, `3.2s`; `-` for none.
fn show_ms(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1.0 => format!("{:.0}µs", ms * 1000.0),
        Some(ms) if ms < 1000.0 => format!("{}ms", trim(ms)),
        Some(ms) => format!("{}s", trim(ms / 1000.0)),
    }
}

/// Up to one decimal, none when it is zero: `1.6`, `13`.
fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
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
        // Each route's figures are in the fleet table above it (`commands::top`).
        for route in &self.routes {
            let _ = writeln!(
                out,
                "  route {}: {} -> {} {} (rollbacks: {})",
                route.name, route.serves, route.plugin, route.version, route.rollbacks
            );
            if let Some(trial) = &route.trial {
                let _ =
                    writeln!(out, "    version {} on trial ({}, {} % of messages)", trial.candidate, trial.strategy, trial.share_percent);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_hosts_route_reads_with_empty_figures() {
        let old = r#"{"name":"greet","serves":"core greet.>","plugin":"echo","version":"8d35c5085d1b","rollbacks":0}"#;
        let route: RouteStatus = serde_json::from_str(old).expect("an older reply reads");
        assert_eq!((route.in_flight, route.rate_per_sec, route.error_rate, route.p50_ms), (0, 0.0, None, None));
        assert_eq!(
            (route.show_error_rate(), route.show_p50(), route.show_breaker(), route.show_pending()),
            ("-".into(), "-".into(), "-", "-".into())
        );
    }

    #[test]
    fn figures_are_shown_short() {
        assert_eq!(show_ms(Some(0.05)), "50µs");
        assert_eq!(show_ms(Some(1.6)), "1.6ms");
        assert_eq!(show_ms(Some(13.0)), "13ms");
        assert_eq!(show_ms(Some(3276.8)), "3.3s");
        let route = RouteStatus {
            name: "orders".into(),
            serves: "jetstream ORDERS/orders".into(),
            plugin: "transform".into(),
            version: "390791e4a411".into(),
            rollbacks: 0,
            in_flight: 3,
            rate_per_sec: 12.26,
            error_rate: Some(0.025),
            p50_ms: Some(0.4),
            p99_ms: Some(6.4),
            breaker: Some("closed".into()),
            consumer_pending: Some(17),
            trial: None,
        };
        assert_eq!(
            (route.show_rate(), route.show_error_rate(), route.show_p50(), route.show_p99(), route.show_breaker(), route.show_pending()),
            ("12.3".into(), "2.5%".into(), "400µs".into(), "6.4ms".into(), "closed", "17".into())
        );
    }
}
