//! What `switchyard status` says of the fleet as a whole, under its table: a
//! plugin served at more than one version (a deploy half done, or refused by
//! some hosts), and hosts in the fleet's registry that did not answer.

use std::collections::BTreeMap;

use crate::reload::Status;
use crate::reload::registry::Entry;

/// A line per plugin that the answering hosts serve at more than one version:
/// `greeter: 2 versions: 8d35c5085d1b on a:1, b:2; 390791e4a411 on c:3`.
pub(super) fn mixed_versions(statuses: &[Status]) -> Vec<String> {
    let mut served: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for status in statuses {
        for route in &status.routes {
            let hosts = served.entry(&route.plugin).or_default().entry(&route.version).or_default();
            if !hosts.contains(&status.host.as_str()) {
                hosts.push(&status.host);
            }
        }
    }
    served
        .into_iter()
        .filter(|(_, versions)| versions.len() > 1)
        .map(|(plugin, versions)| {
            let each: Vec<String> = versions.iter().map(|(version, hosts)| format!("{version} on {}", hosts.join(", "))).collect();
            format!("{plugin}: {} versions: {}", versions.len(), each.join("; "))
        })
        .collect()
}

/// A line per registered host that did not answer, with what it served.
pub(super) fn silent(registered: &[Entry], statuses: &[Status]) -> Vec<String> {
    registered
        .iter()
        .filter(|entry| !statuses.iter().any(|s| s.host == entry.host))
        .map(|entry| {
            let plugins: Vec<String> = entry.plugins.iter().map(|(name, version)| format!("{name}@{version}")).collect();
            format!(
                "{}: no answer (registered, last renewed {} ago: down or cut off?); served {}",
                entry.host,
                humantime::format_duration(entry.age()),
                if plugins.is_empty() { "nothing".to_owned() } else { plugins.join(", ") }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::RouteStatus;

    fn host(name: &str, version: &str) -> Status {
        let route: RouteStatus = serde_json::from_value(serde_json::json!({
            "name": "greet", "serves": "core greet.>", "plugin": "greeter", "version": version, "rollbacks": 0
        }))
        .expect("a route status");
        Status {
            host: name.into(),
            url: String::new(),
            started_at: 0,
            routes: vec![route],
            plugins: Vec::new(),
            last_reload: None,
            counters: BTreeMap::new(),
        }
    }

    #[test]
    fn a_half_done_deploy_is_one_line() {
        let fleet = [host("a:1", "8d35c5085d1b"), host("b:2", "390791e4a411"), host("c:3", "8d35c5085d1b")];
        assert_eq!(mixed_versions(&fleet), ["greeter: 2 versions: 390791e4a411 on b:2; 8d35c5085d1b on a:1, c:3"]);
        assert!(mixed_versions(&fleet[..1]).is_empty());
    }

    #[test]
    fn registered_hosts_that_did_not_answer_are_named() {
        let fleet = [host("a:1", "8d35c5085d1b")];
        let registered = [
            Entry::new("a:1".into(), BTreeMap::from([("greeter".into(), "8d35c5085d1b".into())])),
            Entry::new("b:2".into(), BTreeMap::from([("greeter".into(), "390791e4a411".into())])),
        ];
        let lines = silent(&registered, &fleet);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("b:2: no answer (registered, last renewed "), "{lines:?}");
        assert!(lines[0].ends_with("; served greeter@390791e4a411"), "{lines:?}");
    }
}
