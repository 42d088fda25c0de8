//! `driver-beacon`: the match service's `match-beacon-consumer` on `user.beacon.*` — drivers
//! going on and off duty.
//!
//! It validates the beacon strictly (a bad one is dead-lettered with the reason) and logs the
//! change. In the seed the service records availability in Redis for matching to read; a plugin
//! keeps nothing between messages, so here matching receives its candidates with the request, and
//! this step is where an availability store would be written.

use ride_model::{BeaconStatus, read};
use switchyard_sdk::prelude::*;

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let beacon: BeaconStatus = read(msg)?;
    let state = if beacon.available { "available" } else { "off duty" };
    ctx.info(format!("driver {} is {state} at ({}, {}) since {}", beacon.driver_id, beacon.latitude, beacon.longitude, beacon.timestamp));
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";

    #[test]
    fn a_beacon_is_logged_and_acked() {
        let beacon = json!({"driver_id": DRIVER, "available": true, "latitude": -6.19, "longitude": 106.82,
                            "timestamp": "2024-03-20T09:59:00Z"});
        let handled = MockHost::new().call(handle, &Message::builder(format!("user.beacon.{DRIVER}")).json(&beacon).build());
        assert_eq!(handled.outcome, Outcome::Ack);
        assert!(handled.logged(Level::Info, &format!("driver {DRIVER} is available at (-6.19, 106.82) since 2024-03-20T09:59:00Z")));
    }

    #[test]
    fn a_beacon_for_someone_else_is_rejected() {
        let beacon = json!({"driver_id": DRIVER, "available": false, "latitude": 0.0, "longitude": 0.0,
                            "timestamp": "2024-03-20T09:59:00Z"});
        let handled = MockHost::new().call(handle, &Message::builder("user.beacon.other").json(&beacon).build());
        assert_eq!(
            handled.outcome,
            Outcome::reject(format!(
                "message validation failed: subject `user.beacon.other` names `other` but the payload is about `{DRIVER}`"
            ))
        );
    }
}
