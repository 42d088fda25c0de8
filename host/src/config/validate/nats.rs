//! Checks of `[nats]`: one authentication method, complete pairs (user and
//! password, certificate and key), files that exist, sane limits.

use super::super::paths::is_bare_command;
use super::super::problems::Problems;
use super::super::schema::NatsConfig;
use super::file_problem;

pub(super) fn check(nats: &NatsConfig, problems: &mut Problems) {
    if let Some(urls) = &nats.url {
        if urls.0.iter().all(|u| u.trim().is_empty()) {
            problems.push_at(&["nats", "url"], "`nats.url` must not be empty (leave it out to start an embedded nats-server)");
        } else if urls.0.iter().any(|u| u.trim().is_empty()) {
            problems.push_at(&["nats", "url"], format!("`nats.url` has an empty entry in `{urls}`"));
        }
    }

    match (&nats.user, &nats.password) {
        (Some(_), None) => problems.push_at(&["nats", "user"], "`nats.user` is set without `nats.password`"),
        (None, Some(_)) => problems.push_at(&["nats", "password"], "`nats.password` is set without `nats.user`"),
        _ => {}
    }

    // async-nats takes one authentication method; a second one would silently win
    // or lose depending on call order, so refuse the ambiguity.
    let methods: Vec<(&str, &str)> = [
        (nats.token.is_some(), "token", "`token`"),
        (nats.user.is_some() || nats.password.is_some(), "user", "`user`/`password`"),
        (nats.credentials.is_some(), "credentials", "`credentials`"),
        (nats.nkey.is_some(), "nkey", "`nkey`"),
    ]
    .into_iter()
    .filter(|(set, _, _)| *set)
    .map(|(_, key, shown)| (key, shown))
    .collect();
    if let [_, (second, _), ..] = methods.as_slice() {
        let shown: Vec<&str> = methods.iter().map(|(_, shown)| *shown).collect();
        if let Some((last, init)) = shown.split_last() {
            problems.push_at(&["nats", second], format!("`nats`: choose one authentication method, found {} and {last}", init.join(", ")));
        }
    }

    if let Some(nkey) = &nats.nkey
        && !nkey.starts_with("SU")
    {
        // Never echo the value: it is a secret.
        problems.push_at(&["nats", "nkey"], "`nats.nkey` must be a user nkey seed (starting with `SU`)");
    }
    if let Some(path) = &nats.credentials
        && let Some(why) = file_problem(path)
    {
        problems.push_at(&["nats", "credentials"], format!("`nats.credentials`: {why}"));
    }

    if let Some(tls) = &nats.tls {
        match (&tls.cert, &tls.key) {
            (Some(_), None) => problems.push_at(&["nats", "tls", "cert"], "`nats.tls.cert` is set without `nats.tls.key`"),
            (None, Some(_)) => problems.push_at(&["nats", "tls", "key"], "`nats.tls.key` is set without `nats.tls.cert`"),
            _ => {}
        }
        for (key, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(why) = path.as_deref().and_then(file_problem) {
                problems.push_at(&["nats", "tls", key], format!("`nats.tls.{key}`: {why}"));
            }
        }
    }

    if nats.startup_timeout.is_zero() {
        problems.push_at(&["nats", "startup_timeout"], "`nats.startup_timeout` must be greater than zero");
    }
    if nats.connect_timeout.is_zero() {
        problems.push_at(&["nats", "connect_timeout"], "`nats.connect_timeout` must be greater than zero");
    }
    if nats.subscription_capacity == 0 {
        problems.push_at(&["nats", "subscription_capacity"], "`nats.subscription_capacity` must be at least 1, got `0`");
    }

    // The binary only matters when the host starts its own server; a bare name is
    // looked up on PATH at start-up, where a missing one is reported.
    if nats.url.is_none()
        && let Some(binary) = &nats.embedded.binary
        && !is_bare_command(binary)
        && let Some(why) = file_problem(binary)
    {
        problems.push_at(&["nats", "embedded", "binary"], format!("`nats.embedded.binary`: {why}"));
    }
}
