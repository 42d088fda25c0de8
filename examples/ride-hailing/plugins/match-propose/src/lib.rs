//! `match-propose`: the match service's first step of the driver matching flow.
//!
//! `match.request.{passenger_id}` → the nearest driver to the pickup, among the positions the
//! location service stored in the `LOCATIONS` bucket (those not expired by its TTL), within
//! `radius_km` → `match.proposal.{driver_id}` (the seed's `MatchProposal`: match id, driver,
//! passenger, distance in km, ETA in minutes at the configured average speed, plus the trip).
//!
//! The match id is a UUID derived from the request id, so a redelivered request proposes the same
//! match. No driver within the radius: the request is retried (on the route's backoff), as drivers
//! come and go.
//!
//! ```toml
//! [plugins.match-propose]
//! kv = ["LOCATIONS"]
//! config = { average_speed_kmh = 25.0, radius_km = 5.0 }
//! ```

use ride_model::{LocationStored, MatchProposal, MatchRequest, read, round2};
use serde::Deserialize;
use switchyard_sdk::ids::derive_uuid;
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    average_speed_kmh: f64,
    radius_km: f64,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    for (key, value) in [("average_speed_kmh", settings.average_speed_kmh), ("radius_km", settings.radius_km)] {
        if !(value.is_finite() && value > 0.0) {
            return Err(format!("`{key}` must be positive, found {value}"));
        }
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let request: MatchRequest = read(msg)?;
    let locations = ctx.kv("LOCATIONS")?;
    // Ties go to the lower driver id, so the choice is the same on every delivery.
    let mut nearest: Option<(f64, LocationStored)> = None;
    for key in locations.keys("")? {
        if key == request.passenger_id {
            continue;
        }
        // Expired between the listing and the read: not a candidate.
        let Some((driver, _)) = locations.get_json::<LocationStored>(&key)? else { continue };
        let position = ride_model::Point { latitude: driver.latitude, longitude: driver.longitude };
        let distance = request.pickup.distance_km(&position);
        let closer = nearest.as_ref().is_none_or(|(d, n)| distance.total_cmp(d).then_with(|| driver.user_id.cmp(&n.user_id)).is_lt());
        if distance <= settings.radius_km && closer {
            nearest = Some((distance, driver));
        }
    }
    let Some((distance, driver)) = nearest else {
        return Err(Stop::retry(format!("no driver within {} km of the pickup", settings.radius_km)));
    };
    let minutes = (distance / settings.average_speed_kmh * 60.0).ceil().max(1.0);
    let proposal = MatchProposal {
        match_id: derive_uuid(&["match", request.request_id.as_str()]),
        driver_id: driver.user_id,
        passenger_id: request.passenger_id,
        distance: round2(distance),
        estimated_eta: minutes as u32,
        pickup: request.pickup,
        destination: request.destination,
    };
    let subject = format!("match.proposal.{}", proposal.driver_id);
    ctx.publish_json(&subject, &proposal).or_reject_with(format!("publishing to `{subject}`"))?;
    ctx.info(format!("match {} proposed to driver {} ({} km away)", proposal.match_id, proposal.driver_id, proposal.distance));
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const PASSENGER: &str = "7d3e2a10-5b4c-4e8f-a1d2-6c9b0e3f4a22";
    const NEAR: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
    const FAR: &str = "c4d5e6f7-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    const REQUEST: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

    fn host() -> MockHost {
        MockHost::new()
            .allow("match.proposal.*")
            .bucket("LOCATIONS")
            .config(json!({"average_speed_kmh": 25.0, "radius_km": 5.0}))
            .init(init)
            .expect("accepted")
    }

    /// `user` stored at (`latitude`, `longitude`), as location-store writes it.
    fn stored(host: &MockHost, user: &str, latitude: f64, longitude: f64) {
        let record = json!({"user_id": user, "latitude": latitude, "longitude": longitude,
                            "timestamp": "2024-03-20T10:00:00Z", "expires_at": "2024-03-20T10:05:00Z"});
        host.kv_put("LOCATIONS", user, record.to_string());
    }

    fn request() -> Message {
        Message::builder(format!("match.request.{PASSENGER}"))
            .json(&json!({"request_id": REQUEST, "passenger_id": PASSENGER,
                          "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                          "destination": {"latitude": -6.2297, "longitude": 106.8295}}))
            .build()
    }

    #[test]
    fn the_nearest_stored_driver_gets_the_proposal() {
        let host = host();
        stored(&host, FAR, -6.2500, 106.8500);
        stored(&host, NEAR, -6.1950, 106.8230);
        stored(&host, PASSENGER, -6.1754, 106.8272);
        let handled = host.call(handle, &request());
        assert_eq!(handled.outcome, Outcome::Ack);
        let [proposal] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        assert_eq!(proposal.subject, format!("match.proposal.{NEAR}"), "not the passenger, though nearest");
        let body: Value = serde_json::from_slice(&proposal.payload).expect("json");
        assert_eq!(body["match_id"], derive_uuid(&["match", REQUEST]));
        assert_eq!(body["passenger_id"], PASSENGER);
        assert_eq!(body["distance"], 2.23);
        assert_eq!(body["estimated_eta"], 6, "2.23 km at 25 km/h, rounded up");
        assert_eq!(body["destination"], json!({"latitude": -6.2297, "longitude": 106.8295}));
        assert_eq!(host.call(handle, &request()).sent(), handled.sent(), "the same proposal on a redelivery");
    }

    #[test]
    fn without_a_driver_in_the_radius_the_request_waits() {
        let host = host();
        stored(&host, FAR, -6.9, 107.6);
        let handled = host.call(handle, &request());
        assert_eq!(handled.outcome, Outcome::retry("no driver within 5 km of the pickup"));
        assert!(handled.sent().is_empty());
    }

    #[test]
    fn a_bad_request_is_rejected() {
        let msg = Message::builder(format!("match.request.{PASSENGER}")).json(&json!({"request_id": 1})).build();
        assert!(matches!(host().call(handle, &msg).outcome, Outcome::Reject { .. }));
    }
}
