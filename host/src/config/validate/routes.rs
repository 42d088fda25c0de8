//! Checks of `[[routes]]`: unique names, references to plugins and streams,
//! the core/JetStream split, subjects, and the delivery numbers.

use std::collections::HashMap;

use super::super::load::{Broken, quoted};
use super::super::problems::Problems;
use super::super::schema::{Config, Retention, RouteConfig, StreamConfig};
use super::super::subject::{is_subset, is_valid_subject, overlaps, subject_problem};
use super::entry_name;
use super::names::{queue_problem, token_name_problem};

pub(super) fn check(config: &Config, broken: &Broken, problems: &mut Problems) {
    let mut names = HashMap::new();
    // (stream, durable) → route, to catch two routes sharing one consumer.
    let mut durables: HashMap<(&str, &str), &str> = HashMap::new();
    // Routes per work-queue stream, to check their filters are disjoint.
    let mut work_queues: HashMap<&str, Vec<(usize, &RouteConfig)>> = HashMap::new();

    for (i, route) in config.routes.iter().enumerate() {
        // Its index in the file, to place problems (an earlier entry may have failed to parse).
        let in_file = broken.route_position(i);
        let idx = in_file.to_string();
        let name = route.name.get_ref();
        let at = |key: &'static str| ["routes", idx.as_str(), key];
        let (label, unique) = entry_name("route", i, &route.name, &mut names, problems);

        let plugin = route.plugin.get_ref();
        if !config.plugins.contains_key(plugin) && !broken.plugin(plugin) {
            let hint = if config.plugins.is_empty() {
                "no `[plugins.NAME]` are declared".to_string()
            } else {
                format!("known plugins: {}", quoted(config.plugins.keys()))
            };
            problems.push_spanned(route.plugin.span(), format!("{label}: unknown plugin `{plugin}` ({hint})"));
        }

        match &route.stream {
            None if route.is_timer() => check_timer(route, &label, &idx, problems),
            None => check_core(route, &label, &idx, problems),
            Some(stream_name) => {
                for (key, set) in [("every", route.every.is_some()), ("cron", route.cron.is_some())] {
                    if set {
                        problems.push_at(&at(key), format!("{label}: set `{key}` (a timer route) or `stream`, not both"));
                    }
                }
                let stream = config.streams.iter().find(|s| s.name.get_ref() == stream_name.get_ref());
                match stream {
                    Some(stream) => check_filters(route, stream, &label, &idx, problems),
                    None if broken.stream(stream_name.get_ref()) => {}
                    None => {
                        let hint = if config.streams.is_empty() {
                            "no `[[streams]]` are declared".to_string()
                        } else {
                            format!("declared streams: {}", quoted(config.streams.iter().map(|s| s.name.get_ref())))
                        };
                        let message = format!("{label}: unknown stream `{}` ({hint})", stream_name.get_ref());
                        problems.push_spanned(stream_name.span(), message);
                    }
                }
                if let Some(durable) = &route.durable
                    && let Some(why) = token_name_problem(durable)
                {
                    problems.push_at(&at("durable"), format!("{label}: invalid durable name `{durable}`: {why}"));
                }
                // A duplicate route name already explains a clash of default durables.
                if unique || route.durable.is_some() {
                    let key = (stream_name.get_ref().as_str(), route.durable_name());
                    if let Some(other) = durables.insert(key, name) {
                        let message =
                            format!("{label}: durable consumer `{}` on stream `{}` is already used by route `{other}`", key.1, key.0);
                        match route.durable {
                            Some(_) => problems.push_at(&at("durable"), message),
                            None => problems.push_spanned(route.name.span(), message),
                        }
                    }
                }
                if let Some(stream) = stream.filter(|s| s.retention == Retention::Workqueue) {
                    work_queues.entry(stream.name.get_ref()).or_default().push((in_file, route));
                }
            }
        }
        check_mode_keys(route, &label, &idx, problems);
        check_numbers(route, &label, &idx, problems);
        super::policies::check(route, &label, &idx, problems);
    }

    for (stream, routes) in &work_queues {
        check_work_queue(stream, routes, problems);
    }
}

/// The shortest `every` of a timer route.
const MIN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A timer route has its ticks and nothing to subscribe to.
fn check_timer(route: &RouteConfig, label: &str, idx: &str, problems: &mut Problems) {
    if route.every.is_some_and(|every| every < MIN_EVERY) {
        problems.push_at(&["routes", idx, "every"], format!("{label}: `every` must be at least 1s"));
    }
    if route.cron.is_some() && route.every.is_some() {
        problems.push_at(&["routes", idx, "cron"], format!("{label}: set `every` or `cron`, not both"));
    }
    if !route.subjects.is_empty() {
        problems.push_at(
            &["routes", idx, "subjects"],
            format!("{label}: a timer route (`every` or `cron`) has no `subjects`: it is called with ticks"),
        );
    }
    if route.queue.is_some() {
        problems.push_at(
            &["routes", idx, "queue"],
            format!("{label}: a timer route (`every` or `cron`) has no `queue`: one host of a fleet handles each tick"),
        );
    }
    if route.order_by.is_some() {
        problems.push_at(
            &["routes", idx, "order_by"],
            format!("{label}: a timer route (`every` or `cron`) has no `order_by`: its ticks come one at a time"),
        );
    }
}

fn check_core(route: &RouteConfig, label: &str, idx: &str, problems: &mut Problems) {
    if route.subjects.is_empty() {
        problems.push_at(
            &["routes", idx, "subjects"],
            format!("{label}: a core route needs `subjects` (or `stream` to consume a JetStream stream)"),
        );
    }
    for (j, subject) in route.subjects.iter().enumerate() {
        if let Some(why) = subject_problem(subject, true) {
            problems.push_at(&["routes", idx, "subjects", &j.to_string()], format!("{label}: invalid subject `{subject}`: {why}"));
        }
    }
    if let Some(queue) = &route.queue
        && let Some(why) = queue_problem(queue)
    {
        problems.push_at(&["routes", idx, "queue"], format!("{label}: invalid queue group `{queue}`: {why}"));
    }
}

/// Keys that only mean something on a core route, and why a JetStream route has no use for them.
const CORE_ONLY: [(&[&str], &str); 4] = [
    (&["queue"], "a JetStream route shares work through its durable consumer"),
    (&["retry", "attempts"], "a JetStream route retries up to `max_deliver`"),
    (&["retry", "max_elapsed"], "a JetStream route retries up to `max_deliver`"),
    (&["rate_limit", "max_wait"], "a JetStream message waits for its permit as long as it takes, kept alive"),
];

/// Keys that only mean something on a JetStream route.
const JETSTREAM_ONLY: [&[&str]; 7] =
    [&["durable"], &["max_deliver"], &["ack_wait"], &["batch"], &["max_ack_pending"], &["double_ack"], &["update_consumer"]];

/// A key of the other kind of route is a mistake (a wrong guess at which route
/// this is, or a key moved between routes), never silently ignored.
fn check_mode_keys(route: &RouteConfig, label: &str, idx: &str, problems: &mut Problems) {
    // Whether the file sets it; a config built in code has only the values.
    let written = |path: &[&str]| match problems.source() {
        Some(source) => source.contains(&[&["routes", idx], path].concat()),
        None => match path {
            ["queue"] => route.queue.is_some(),
            ["durable"] => route.durable.is_some(),
            _ => false,
        },
    };
    let found: Vec<(Vec<&str>, String)> = if route.stream.is_some() {
        CORE_ONLY
            .iter()
            .filter(|(path, _)| written(path))
            .map(|(path, why)| (path.to_vec(), format!("`{}` is only for core routes; {why}", path.join("."))))
            .collect()
    } else {
        JETSTREAM_ONLY
            .iter()
            .filter(|path| written(path))
            .map(|path| (path.to_vec(), format!("`{}` is only for JetStream routes (set `stream`)", path.join("."))))
            .collect()
    };
    for (path, message) in found {
        problems.push_at(&[&["routes", idx], path.as_slice()].concat(), format!("{label}: {message}"));
    }
}

/// A consumer's filter subjects must lie inside its stream, as NATS requires.
fn check_filters(route: &RouteConfig, stream: &StreamConfig, label: &str, idx: &str, problems: &mut Problems) {
    for (j, subject) in route.subjects.iter().enumerate() {
        let at = ["routes", idx, "subjects", &j.to_string()];
        if let Some(why) = subject_problem(subject, true) {
            problems.push_at(&at, format!("{label}: invalid subject `{subject}`: {why}"));
        } else if !stream.subjects.iter().any(|s| is_subset(subject, s)) {
            problems.push_at(
                &at,
                format!(
                    "{label}: subject `{subject}` is not inside stream `{}` (its subjects: {})",
                    stream.name.get_ref(),
                    quoted(&stream.subjects)
                ),
            );
        }
    }
}

/// On a work-queue stream each message goes to exactly one consumer, so NATS
/// refuses consumers whose filters overlap (no filter = the whole stream).
fn check_work_queue(stream: &str, routes: &[(usize, &RouteConfig)], problems: &mut Problems) {
    let filters = |route: &RouteConfig| -> Vec<String> {
        if route.subjects.is_empty() {
            vec![">".into()]
        } else {
            route.subjects.iter().filter(|s| is_valid_subject(s, true)).cloned().collect()
        }
    };
    for (n, (i, route)) in routes.iter().enumerate() {
        let mine = filters(route);
        let clash = routes[..n].iter().find(|(_, earlier)| {
            let theirs = filters(earlier);
            mine.iter().any(|a| theirs.iter().any(|b| overlaps(a, b)))
        });
        if let Some((_, earlier)) = clash {
            problems.push_at(
                &["routes", &i.to_string(), "subjects"],
                format!(
                    "route `{}`: its subjects overlap those of route `{}` on work-queue stream `{stream}`, where each message goes to one consumer only",
                    route.name.get_ref(),
                    earlier.name.get_ref()
                ),
            );
        }
    }
}

fn check_numbers(route: &RouteConfig, label: &str, idx: &str, problems: &mut Problems) {
    let at = |key: &'static str| ["routes", idx, key];
    if route.concurrency == 0 {
        problems.push_at(&at("concurrency"), format!("{label}: `concurrency` must be at least 1, got `0`"));
    }
    if route.batch == 0 {
        problems.push_at(&at("batch"), format!("{label}: `batch` must be at least 1, got `0`"));
    }
    if route.max_deliver < 1 && route.max_deliver != -1 {
        problems.push_at(
            &at("max_deliver"),
            format!("{label}: `max_deliver` must be at least 1, or -1 for unlimited, got `{}`", route.max_deliver),
        );
    }
    if route.max_ack_pending < 1 && route.max_ack_pending != -1 {
        problems.push_at(
            &at("max_ack_pending"),
            format!("{label}: `max_ack_pending` must be at least 1, or -1 for unlimited, got `{}`", route.max_ack_pending),
        );
    }
    if route.ack_wait.is_zero() {
        problems.push_at(&at("ack_wait"), format!("{label}: `ack_wait` must be greater than zero"));
    }
    let retry = &route.retry;
    if retry.delays.as_ref().is_some_and(Vec::is_empty) {
        problems.push_at(&["routes", idx, "retry", "delays"], format!("{label}: `retry.delays` must not be empty"));
    }
    if retry.delays.is_some() && retry.initial.is_some() {
        problems.push_at(
            &["routes", idx, "retry", "initial"],
            format!("{label}: give `retry.delays` (a schedule) or `retry.initial` (exponential), not both"),
        );
    }
    if !(retry.multiplier >= 1.0 && retry.multiplier.is_finite()) {
        problems.push_at(
            &["routes", idx, "retry", "multiplier"],
            format!("{label}: `retry.multiplier` must be at least 1.0, got `{}`", retry.multiplier),
        );
    }
    if !(0.0..=1.0).contains(&retry.jitter) {
        problems.push_at(
            &["routes", idx, "retry", "jitter"],
            format!("{label}: `retry.jitter` must be between 0.0 and 1.0, got `{}`", retry.jitter),
        );
    }
    if route.retry.attempts == 0 {
        problems.push_at(&["routes", idx, "retry", "attempts"], format!("{label}: `retry.attempts` must be at least 1, got `0`"));
    }
}
