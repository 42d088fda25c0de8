//! The timer driver: a route with `every` gets a tick message at each multiple
//! of `every` since the Unix epoch, one with `cron` at each time its expression
//! matches (UTC), handled like a core message (retried in process, then
//! dead-lettered). Ticks fall at the same instants on every host,
//! so a fleet can agree on each: the host that first creates the key
//! `<route>.<tick ms>` in the `SWITCHYARD_TICKS` key-value bucket handles it,
//! the others skip it. When the bucket cannot be reached, a tick is skipped
//! rather than possibly run on every host.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::{self, CreateErrorKind, Store};
use switchyard_abi::Message;
use tokio_util::sync::CancellationToken;

use super::core::Settler;
use super::{Outputs, Route};
use crate::broker::{Failure, retrying};
use crate::config::{CoreSpec, Schedule, TimerSpec};
use crate::workers::Workers;

/// Subjects of tick messages: `switchyard.tick.<route>`.
pub(crate) const TICK_PREFIX: &str = "switchyard.tick";
/// Where hosts claim ticks.
const TICKS_BUCKET: &str = "SWITCHYARD_TICKS";
/// How long a claim is kept: long enough that no host's clock is that far off.
const CLAIM_TTL: Duration = Duration::from_secs(3600);

pub(super) async fn start(
    route: Arc<Route>,
    spec: TimerSpec,
    out: Outputs,
    cancel: CancellationToken,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + out.startup_timeout;
    let what = format!("route `{}`: the `{TICKS_BUCKET}` bucket", route.name);
    let claims = retrying(&what, deadline, || claims_bucket(&out.js)).await?;
    let subject = format!("{TICK_PREFIX}.{}", route.name);
    let core = CoreSpec { subjects: vec![subject.clone()], queue: None, attempts: spec.attempts, max_elapsed: spec.max_elapsed };
    let settler = Settler::new(route.clone(), core);
    workers.spawn(format!("route `{}` timer", route.name), async move {
        loop {
            let Some(tick) = spec.schedule.next_after(unix_ms(SystemTime::now())) else {
                tracing::warn!(route = %route.name, "its schedule ({}) has no more ticks", spec.schedule);
                return;
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(until(tick)) => {}
            }
            if claim(&claims, &route.name, tick).await {
                settler.handle(&out, &cancel, tick_message(&subject, &route.name, tick, &spec.schedule)).await;
            }
        }
    });
    Ok(())
}

/// The bucket of claims, created by the first host that needs it.
async fn claims_bucket(js: &async_nats::jetstream::Context) -> Result<Store, Failure> {
    if let Ok(store) = js.get_key_value(TICKS_BUCKET).await {
        return Ok(store);
    }
    let config = kv::Config { bucket: TICKS_BUCKET.into(), history: 1, max_age: CLAIM_TTL, ..Default::default() };
    js.create_key_value(config).await.map_err(|err| Failure::Transient(anyhow::anyhow!("{err}")))
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How long until Unix millisecond `tick`.
fn until(tick: u64) -> Duration {
    Duration::from_millis(tick.saturating_sub(unix_ms(SystemTime::now())))
}

/// Whether this host handles `tick`: it created the claim first. A store that
/// does not answer is tried for a second, then the tick is skipped.
async fn claim(claims: &Store, route: &str, tick: u64) -> bool {
    let key = format!("{route}.{tick}");
    let host = format!("{}", std::process::id());
    for attempt in 0..4 {
        match claims.create(&key, host.clone().into()).await {
            Ok(_) => return true,
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => return false,
            Err(err) if attempt == 3 => {
                tracing::warn!(route, tick, "tick skipped: cannot claim it in `{TICKS_BUCKET}`: {err}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    false
}

/// The message a tick is: its subject, and the scheduled time in the payload
/// (`{"route": …, "scheduled_unix_ms": …, "every_ms": …}`, or `"cron": …`
/// instead of `every_ms`) and a header.
fn tick_message(subject: &str, route: &str, tick: u64, schedule: &Schedule) -> Message {
    let mut payload = serde_json::json!({"route": route, "scheduled_unix_ms": tick});
    match schedule {
        Schedule::Every(every) => payload["every_ms"] = serde_json::json!(every.as_millis() as u64),
        Schedule::Cron(cron) => payload["cron"] = serde_json::json!(cron.pattern.to_string()),
    }
    Message {
        subject: subject.to_owned(),
        headers: vec![("Switchyard-Tick".to_owned(), tick.to_string())],
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
        ..Message::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_multiples_of_every_after_now() {
        let now = unix_ms(SystemTime::now());
        let tick = Schedule::Every(Duration::from_secs(1)).next_after(now).expect("a tick");
        assert_eq!(tick % 1000, 0);
        assert!(tick > now && tick <= now + 1000);
        assert!(until(tick) <= Duration::from_millis(1000));
    }

    #[test]
    fn cron_ticks_fall_where_the_expression_matches_in_utc() {
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let quarter_past = Schedule::Cron(Box::new(parser.parse("15 * * * *").expect("parses")));
        const TEN_O_CLOCK: u64 = 1_796_983_200_000; // 2026-12-11T10:00:00Z
        // 10:20 -> 11:15.
        assert_eq!(quarter_past.next_after(TEN_O_CLOCK + 20 * 60_000), Some(TEN_O_CLOCK + 75 * 60_000));
        let every_ten_seconds = Schedule::Cron(Box::new(parser.parse("*/10 * * * * *").expect("parses")));
        assert_eq!(every_ten_seconds.next_after(TEN_O_CLOCK), Some(TEN_O_CLOCK + 10_000));
        assert!(parser.parse("@hourly").is_ok(), "nicknames, as docs/CONFIG.md says");
        let payload = tick_message("s", "r", 5, &every_ten_seconds).payload;
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&payload).ok(),
            Some(serde_json::json!({"route": "r", "scheduled_unix_ms": 5, "cron": "*/10 * * * * *"}))
        );
    }
}
