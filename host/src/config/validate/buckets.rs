//! Checks of `[[buckets]]` and of the buckets plugins name in `kv`.

use std::collections::{HashMap, HashSet};

use super::super::load::{Broken, quoted};
use super::super::problems::Problems;
use super::super::schema::Config;
use super::entry_name;

/// JetStream keeps at most this many values per key.
const MAX_HISTORY: i64 = 64;

pub(super) fn check(config: &Config, broken: &Broken, problems: &mut Problems) {
    let mut seen = HashMap::new();
    for (i, bucket) in config.buckets.iter().enumerate() {
        let idx = broken.bucket_position(i).to_string();
        // A bucket name is one subject token (`$KV.<name>.<key>`), `-` and `_` allowed.
        let (label, _) = entry_name("bucket", i, &bucket.name, &mut seen, problems);
        if !(1..=MAX_HISTORY).contains(&bucket.history) {
            problems.push_at(
                &["buckets", &idx, "history"],
                format!("{label}: `history` must be between 1 and {MAX_HISTORY}, got `{}`", bucket.history),
            );
        }
        if !(1..=5).contains(&bucket.replicas) {
            problems
                .push_at(&["buckets", &idx, "replicas"], format!("{label}: `replicas` must be between 1 and 5, got `{}`", bucket.replicas));
        }
        if bucket.ttl.is_some_and(|ttl| ttl.is_zero()) {
            problems.push_at(
                &["buckets", &idx, "ttl"],
                format!("{label}: `ttl` must be greater than zero (leave it out: values never expire)"),
            );
        }
        if bucket.max_value_size.is_some_and(|size| size.as_u64() == 0 || size.as_u64() > i32::MAX as u64) {
            problems.push_at(&["buckets", &idx, "max_value_size"], format!("{label}: `max_value_size` must be between 1 byte and 2GiB"));
        }
    }
    // Each declared name once, in file order, for the hint.
    let mut listed = HashSet::new();
    let declared: Vec<&str> = config.buckets.iter().map(|b| b.name.get_ref().as_str()).filter(|name| listed.insert(*name)).collect();
    let known = if declared.is_empty() { "none is declared".to_owned() } else { format!("declared: {}", quoted(&declared)) };
    for (name, plugin) in &config.plugins {
        for bucket in &plugin.kv {
            let wanted = bucket.get_ref();
            if !declared.contains(&wanted.as_str()) && !broken.bucket(wanted) {
                problems.push_spanned(
                    bucket.span(),
                    format!("plugin `{name}`: `kv` names bucket `{wanted}`, which no `[[buckets]]` declares ({known})"),
                );
            }
        }
    }
}
