//! `match-confirm`: the match service's last step of the driver matching flow, and the start of
//! the ride lifecycle.
//!
//! `match.accepted.{match_id}` → `match.confirmed.{match_id}` (to the users service, which tells
//! both parties) and `ride.create.{match_id}` (to the rides service), in that order. The
//! confirmation time is when the acceptance was stored in the stream, so a redelivery confirms
//! with the same content.

use ride_model::{MatchAccepted, MatchConfirmed, RideCreate, read};
use switchyard_sdk::prelude::*;

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let accepted: MatchAccepted = read(msg)?;
    let confirmed = MatchConfirmed {
        match_id: accepted.match_id.clone(),
        driver_id: accepted.driver_id.clone(),
        passenger_id: accepted.passenger_id.clone(),
        pickup: accepted.pickup,
        destination: accepted.destination,
        confirmed_at: Timestamp::of_delivery(msg).unwrap_or(accepted.accepted_at),
    };
    let subject = format!("match.confirmed.{}", confirmed.match_id);
    ctx.publish_json(&subject, &confirmed).or_reject_with(format!("publishing to `{subject}`"))?;

    let create = RideCreate {
        match_id: accepted.match_id,
        driver_id: accepted.driver_id,
        passenger_id: accepted.passenger_id,
        pickup: accepted.pickup,
        destination: accepted.destination,
    };
    let subject = format!("ride.create.{}", create.match_id);
    ctx.publish_json(&subject, &create).or_reject_with(format!("publishing to `{subject}`"))?;
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const MATCH: &str = "1f2e3d4c-5b6a-8798-a0b1-c2d3e4f5a6b7";
    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
    const PASSENGER: &str = "7d3e2a10-5b4c-4e8f-a1d2-6c9b0e3f4a22";

    fn accepted(driver: &str) -> Message {
        Message::builder(format!("match.accepted.{MATCH}"))
            .json(&json!({"match_id": MATCH, "driver_id": driver, "passenger_id": PASSENGER,
                          "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                          "destination": {"latitude": -6.2297, "longitude": 106.8295},
                          "accepted_at": "2024-03-20T10:01:00Z"}))
            .build()
    }

    #[test]
    fn an_acceptance_confirms_the_match_then_asks_for_the_ride() {
        let handled = MockHost::new().allow("match.confirmed.*").allow("ride.create.*").call(handle, &accepted(DRIVER));
        assert_eq!(handled.outcome, Outcome::Ack);
        let [confirmed, create] = handled.sent() else { panic!("two publishes: {:?}", handled.publishes) };
        assert_eq!(confirmed.subject, format!("match.confirmed.{MATCH}"));
        assert_eq!(create.subject, format!("ride.create.{MATCH}"));
        let confirmed: Value = serde_json::from_slice(&confirmed.payload).expect("json");
        assert_eq!(confirmed["confirmed_at"], "2024-03-20T10:01:00Z", "core delivery: the acceptance time");
        let create: Value = serde_json::from_slice(&create.payload).expect("json");
        assert_eq!(
            create,
            json!({"match_id": MATCH, "driver_id": DRIVER, "passenger_id": PASSENGER,
                   "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                   "destination": {"latitude": -6.2297, "longitude": 106.8295}})
        );
    }

    #[test]
    fn a_passenger_cannot_drive_themselves() {
        let handled = MockHost::new().allow(">").call(handle, &accepted(PASSENGER));
        assert_eq!(handled.outcome, Outcome::reject("message validation failed: `driver_id` must differ from `passenger_id`"));
    }
}
