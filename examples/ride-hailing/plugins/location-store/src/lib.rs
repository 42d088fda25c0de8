//! `location-store`: the location service's step of the location update flow.
//!
//! `location.update.{user_id}` → validate strictly → `location.stored.{user_id}` with the time the
//! position expires (`timestamp` + the configured TTL). In the seed the service writes the
//! position to Redis with that TTL; a plugin reaches no Redis, so the stored record is the message
//! itself, for the users service to confirm to the client.
//!
//! ```toml
//! [plugins.location-store.config]
//! ttl_seconds = 300
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
        MockHost::new().allow("location.stored.*").config(json!({"ttl_seconds": 300})).init(init).expect("accepted")
    }

    #[test]
    fn an_update_is_stored_with_its_expiry() {
        let update = json!({"user_id": DRIVER, "latitude": -6.1754, "longitude": 106.8272, "timestamp": "2024-03-20T10:00:00Z"});
        let handled = host().call(handle, &Message::builder(format!("location.update.{DRIVER}")).json(&update).build());
        assert_eq!(handled.outcome, Outcome::Ack);
        let [stored] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        assert_eq!(stored.subject, format!("location.stored.{DRIVER}"));
        let body: Value = serde_json::from_slice(&stored.payload).expect("json");
        assert_eq!(
            body,
            json!({"user_id": DRIVER, "latitude": -6.1754, "longitude": 106.8272, "timestamp": "2024-03-20T10:00:00Z",
                   "expires_at": "2024-03-20T10:05:00Z"})
        );
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
