//! Checks of a route's delivery policies: rate limit, circuit breaker, ordering key.

use super::super::problems::Problems;
use super::super::schema::{KeySource, RouteConfig};

pub(super) fn check(route: &RouteConfig, label: &str, idx: &str, problems: &mut Problems) {
    let at = |key: &'static str, field: &'static str| ["routes", idx, key, field];
    if let Some(limit) = &route.rate_limit {
        if limit.rate == 0 {
            problems.push_at(&at("rate_limit", "rate"), format!("{label}: `rate_limit.rate` must be at least 1"));
        }
        if limit.per.is_zero() {
            problems.push_at(&at("rate_limit", "per"), format!("{label}: `rate_limit.per` must be greater than zero"));
        }
        if limit.burst == Some(0) {
            problems.push_at(&at("rate_limit", "burst"), format!("{label}: `rate_limit.burst` must be at least 1"));
        }
        if limit.max_keys == 0 {
            problems.push_at(&at("rate_limit", "max_keys"), format!("{label}: `rate_limit.max_keys` must be at least 1"));
        }
        if let Some(key) = &limit.key {
            check_key(key, &at("rate_limit", "key"), label, "rate_limit.key", problems);
        }
    }
    if let Some(breaker) = &route.breaker {
        if breaker.consecutive_failures == 0 {
            problems.push_at(&at("breaker", "consecutive_failures"), format!("{label}: `breaker.consecutive_failures` must be at least 1"));
        }
        if let Some(rate) = breaker.failure_rate
            && !(rate > 0.0 && rate <= 1.0)
        {
            problems
                .push_at(&at("breaker", "failure_rate"), format!("{label}: `breaker.failure_rate` must be in (0.0, 1.0], got `{rate}`"));
        }
        if breaker.probes == 0 {
            problems.push_at(&at("breaker", "probes"), format!("{label}: `breaker.probes` must be at least 1"));
        }
        if breaker.open_for.is_zero() || breaker.window.is_zero() {
            problems.push_at(
                &["routes", idx, "breaker"],
                format!("{label}: `breaker.open_for` and `breaker.window` must be greater than zero"),
            );
        }
    }
    if let Some(key) = &route.order_by {
        check_key(key, &["routes", idx, "order_by"], label, "order_by", problems);
    }
}

fn check_key(key: &KeySource, path: &[&str], label: &str, name: &str, problems: &mut Problems) {
    match key {
        KeySource::SubjectToken(0) => {
            problems.push_at(path, format!("{label}: `{name}.subject_token` counts from 1, got `0`"));
        }
        KeySource::Header(header) if header.trim().is_empty() => {
            problems.push_at(path, format!("{label}: `{name}.header` must name a header"));
        }
        _ => {}
    }
}
