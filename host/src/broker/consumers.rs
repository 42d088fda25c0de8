//! A route's durable pull consumer: created when missing. Hosts of a fleet
//! share it, so an existing one is never silently rewritten: settings that
//! differ from the file are an error naming each field, unless the route says
//! `update_consumer = true`.

use std::collections::BTreeSet;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::{ConsumerCreateStrictErrorKind, ConsumerUpdateErrorKind, Stream};
use async_nats::jetstream::{ErrorCode, consumer};

use super::startup::Failure;
use super::streams::show_limit;

/// Bind the durable consumer `wanted.durable_name`, creating it when missing.
pub async fn ensure_consumer(stream: &Stream, wanted: pull::Config, update: bool) -> Result<PullConsumer, Failure> {
    let durable = wanted.durable_name.clone().unwrap_or_default();
    let label = format!("consumer `{durable}` on stream `{}`", stream.cached_info().config.name);
    match stream.consumer_info(&durable).await {
        Ok(info) => {
            let differences = differences(&info.config, &wanted);
            if !differences.is_empty() {
                if !update {
                    return Err(Failure::Fatal(anyhow::anyhow!(
                        "{label} exists with other settings: {}. The host does not change a shared consumer it is not told to: \
                         make runtime.toml match, or set `update_consumer = true` on the route",
                        differences.join("; ")
                    )));
                }
                for d in &differences {
                    tracing::warn!("{label}: changing {d} (`update_consumer = true`)");
                }
                stream.update_consumer(wanted).await.map_err(|err| match err.kind() {
                    ConsumerUpdateErrorKind::JetStream(e) => Failure::from_jetstream(Some(e.error_code()), err.into()),
                    ConsumerUpdateErrorKind::TimedOut | ConsumerUpdateErrorKind::Request => Failure::Transient(err.into()),
                    _ => Failure::Fatal(err.into()),
                })?;
            }
        }
        Err(err) => match err.kind() {
            ConsumerInfoErrorKind::NotFound => {
                stream.create_consumer_strict(wanted).await.map_err(|err| match err.kind() {
                    // Another host created it first: the next try compares it.
                    ConsumerCreateStrictErrorKind::AlreadyExists => Failure::Transient(err.into()),
                    ConsumerCreateStrictErrorKind::JetStream(e) => Failure::from_jetstream(Some(e.error_code()), err.into()),
                    ConsumerCreateStrictErrorKind::TimedOut | ConsumerCreateStrictErrorKind::Request => Failure::Transient(err.into()),
                    _ => Failure::Fatal(err.into()),
                })?;
                tracing::info!("{label} created");
            }
            ConsumerInfoErrorKind::JetStream(e) if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND => {
                return Err(Failure::Transient(anyhow::anyhow!("{label}: not found")));
            }
            ConsumerInfoErrorKind::JetStream(e) => return Err(Failure::from_jetstream(Some(e.error_code()), err.into())),
            ConsumerInfoErrorKind::InvalidName | ConsumerInfoErrorKind::StreamNotFound => return Err(Failure::Fatal(err.into())),
            _ => return Err(Failure::Transient(err.into())),
        },
    }
    stream.get_consumer(&durable).await.map_err(|err| Failure::Transient(anyhow::anyhow!("{label}: {err}")))
}

/// The settings of `wanted` the server's consumer does not have, as
/// "`field` is X on the server, Y for this host".
fn differences(server: &consumer::Config, wanted: &pull::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |field: &str, server: String, file: String| {
        out.push(format!("`{field}` is {server} on the server, {file} for this host"));
    };
    // The server may report one filter in either field.
    let filters = |many: &[String], one: &str| -> BTreeSet<String> {
        many.iter().cloned().chain((!one.is_empty()).then(|| one.to_owned())).collect()
    };
    let (have, want) = (filters(&server.filter_subjects, &server.filter_subject), filters(&wanted.filter_subjects, &wanted.filter_subject));
    if have != want {
        differ("subjects", format!("{have:?}"), format!("{want:?}"));
    }
    if server.ack_policy != AckPolicy::Explicit {
        differ("ack_policy", format!("{:?}", server.ack_policy), "Explicit (always)".into());
    }
    if server.max_deliver != wanted.max_deliver {
        // The route's `max_deliver` is counted by the host, so the server never
        // gives up on a message the host could not yet dead-letter.
        differ(
            "max_deliver",
            show_limit(server.max_deliver),
            format!("{} (the host counts attempts itself)", show_limit(wanted.max_deliver)),
        );
    }
    if server.ack_wait != wanted.ack_wait {
        let human = |d| humantime::format_duration(d).to_string();
        differ("ack_wait", format!("`{}`", human(server.ack_wait)), format!("`{}`", human(wanted.ack_wait)));
    }
    if server.max_ack_pending != wanted.max_ack_pending {
        differ("max_ack_pending", show_limit(server.max_ack_pending), show_limit(wanted.max_ack_pending));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn wanted() -> pull::Config {
        pull::Config {
            durable_name: Some("jobs".into()),
            filter_subjects: vec!["jobs.>".into()],
            max_deliver: -1,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            ..Default::default()
        }
    }

    fn on_server(config: &pull::Config) -> consumer::Config {
        consumer::Config {
            durable_name: config.durable_name.clone(),
            // A single filter comes back in `filter_subject`.
            filter_subject: config.filter_subjects.first().cloned().unwrap_or_default(),
            ack_policy: AckPolicy::Explicit,
            max_deliver: config.max_deliver,
            ack_wait: config.ack_wait,
            max_ack_pending: config.max_ack_pending,
            ..Default::default()
        }
    }

    #[test]
    fn the_same_settings_do_not_differ() {
        assert_eq!(differences(&on_server(&wanted()), &wanted()), Vec::<String>::new());
    }

    #[test]
    fn each_differing_field_is_named() {
        let server = on_server(&pull::Config { ack_wait: Duration::from_secs(5), max_deliver: 3, ..wanted() });
        let found = differences(&server, &wanted());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("`max_deliver` is 3 on the server, unlimited"), "{found:?}");
        assert!(found[1].starts_with("`ack_wait` is `5s` on the server, `30s`"), "{found:?}");
    }
}
