//! `location-store`: the location service's step of the location update flow.
//!
//! `location.update.{user_id}` → validate strictly → the position stored under the user's id in the
//! `LOCATIONS` key-value bucket (Redis in the seed), whose `ttl` drops it when no update follows →
//! `location.stored.{user_id}` with the time it expires (`timestamp` + the configured TTL, the
//! bucket's), for the users service to confirm to the client. Match-propose reads the bucket.
//!
//! Storing is idempotent: a redelivered update writes the same record again.
//!
//! ```toml
//! [plugins.location-store]
//! kv = ["LOCATIONS"]
//! config = { ttl_seconds = 300 }   # as the bucket's ttl
//! ```

use std::time::Duration;

use ride_model::{LocationStored, LocationUpdate, read};
use serde::Deserialize;
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    ttl_seconds: u64,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    match settings.ttl_seconds {
        0 => Err("`ttl_seconds` must be at least 1".to_owned()),
        _ => Ok(()),
    }
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let update: LocationUpdate = read(msg)?;
    let ttl = settings.ttl_seconds;
    let stored = LocationStored {
        user_id: update.user_id,
        latitude: update.latitude,
        longitude: update.longitude,
        timestamp: update.timestamp,
        expires_at: update.timestamp.plus(Duration::from_secs(ttl)),
    };
    // A store that is down is retried (`?`): the update is not lost.
    ctx.kv("LOCATIONS")?.put_json(&stored.user_id, &stored)?;
    let subject = format!("location.stored.{}", stored.user_id);
    ctx.publish_json(&subject, &stored).or_reject_with(format!("publishing to `{subject}`"))?;
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";

    fn host() -> MockHost {
        MockHost::new().allow("location.stored.*").bucket("LOCATIONS").config(json!({"ttl_seconds": 300})).init(init).expect("accepted")
    }

    #[test]
    fn an_update_is_stored_with_its_expiry() {
        let update = json!({"user_id": DRIVER, "latitude": -6.1754, "longitude": 106.8272, "timestamp": "2024-03-20T10:00:00Z"});
        let host = host();
        let handled = host.call(handle, &Message::builder(format!("location.update.{DRIVER}")).json(&update).build());
        assert_eq!(handled.outcome, Outcome::Ack);
        let [stored] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        assert_eq!(stored.subject, format!("location.stored.{DRIVER}"));
        let body: Value = serde_json::from_slice(&stored.payload).expect("json");
        assert_eq!(
            body,
            json!({"user_id": DRIVER, "latitude": -6.1754, "longitude": 106.8272, "timestamp": "2024-03-20T10:00:00Z",
                   "expires_at": "2024-03-20T10:05:00Z"})
        );
        // The same record is in the bucket, under the user's id.
        let read = host.call(
            |_: &Message, ctx: &mut Context| match ctx.kv("LOCATIONS").and_then(|b| b.get(DRIVER)) {
                Ok(Some(entry)) => Outcome::reply(entry.value),
                other => Outcome::reject(format!("{other:?}")),
            },
            &Message::builder("probe").build(),
        );
        assert_eq!(read.outcome, Outcome::reply(stored.payload.clone()));
    }

    #[test]
    fn an_invalid_update_is_rejected_with_every_problem() {
        let update = json!({"user_id": DRIVER, "latitude": 123.0, "longitude": -200.0, "timestamp": "yesterday"});
        let handled = host().call(handle, &Message::builder(format!("location.update.{DRIVER}")).json(&update).build());
        let Outcome::Reject { reason } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        assert!(reason.contains("invalid timestamp `yesterday`"), "{reason}");
        let update = json!({"user_id": DRIVER, "latitude": 123.0, "longitude": -200.0, "timestamp": "2024-03-20T10:00:00Z"});
        let handled = host().call(handle, &Message::builder(format!("location.update.{DRIVER}")).json(&update).build());
        assert_eq!(
            handled.outcome,
            Outcome::reject(
                "message validation failed: `latitude` must be within -90..=90, found 123; \
                 `longitude` must be within -180..=180, found -200"
            )
        );
        assert!(handled.sent().is_empty());
    }

    #[test]
    fn init_refuses_a_zero_ttl() {
        assert_eq!(MockHost::new().config(json!({"ttl_seconds": 0})).init(init).err(), Some("`ttl_seconds` must be at least 1".into()));
    }
}
