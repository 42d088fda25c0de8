//! `match-propose`: the match service's first step of the driver matching flow.
//!
//! `match.request.{passenger_id}` → the nearest candidate driver to the pickup →
//! `match.proposal.{driver_id}` (the seed's `MatchProposal`: match id, driver, passenger, distance
//! in km, ETA in minutes at the configured average speed, plus the trip).
//!
//! The match id is a UUID derived from the request id, so a redelivered request proposes the same
//! match. Candidates come with the request because the service has no store of driver positions
//! (the seed keeps them in Redis).
//!
//! ```toml
//! [plugins.match-propose.config]
//! average_speed_kmh = 25.0
//! ```

use ride_model::{MatchProposal, MatchRequest, read, round2};
use serde::Deserialize;
use switchyard_sdk::ids::derive_uuid;
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    average_speed_kmh: f64,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    let speed = settings.average_speed_kmh;
    if speed.is_finite() && speed > 0.0 { Ok(()) } else { Err(format!("`average_speed_kmh` must be positive, found {speed}")) }
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let request: MatchRequest = read(msg)?;
    let speed = settings.average_speed_kmh;
    // Validation guarantees at least one candidate; ties go to the lower driver id, so the
    // choice is the same on every delivery.
    let nearest = request
        .candidates
        .iter()
        .map(|c| (request.pickup.distance_km(&c.position()), c))
        .min_by(|(da, a), (db, b)| da.total_cmp(db).then_with(|| a.driver_id.cmp(&b.driver_id)));
    let Some((distance, driver)) = nearest else {
        return Err(Stop::reject("no candidate driver"));
    };
    let minutes = (distance / speed * 60.0).ceil().max(1.0);
    let proposal = MatchProposal {
        match_id: derive_uuid(&["match", request.request_id.as_str()]),
        driver_id: driver.driver_id.clone(),
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
        MockHost::new().allow("match.proposal.*").config(json!({"average_speed_kmh": 25.0})).init(init).expect("accepted")
    }

    fn request(candidates: Value) -> Message {
        Message::builder(format!("match.request.{PASSENGER}"))
            .json(&json!({"request_id": REQUEST, "passenger_id": PASSENGER,
                          "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                          "destination": {"latitude": -6.2297, "longitude": 106.8295},
                          "candidates": candidates}))
            .build()
    }

    #[test]
    fn the_nearest_driver_gets_the_proposal() {
        let msg = request(json!([
            {"driver_id": FAR, "latitude": -6.2500, "longitude": 106.8500},
            {"driver_id": NEAR, "latitude": -6.1950, "longitude": 106.8230},
        ]));
        let handled = host().call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let [proposal] = handled.sent() else { panic!("one publish: {:?}", handled.publishes) };
        assert_eq!(proposal.subject, format!("match.proposal.{NEAR}"));
        let body: Value = serde_json::from_slice(&proposal.payload).expect("json");
        assert_eq!(body["match_id"], derive_uuid(&["match", REQUEST]));
        assert_eq!(body["passenger_id"], PASSENGER);
        assert_eq!(body["distance"], 2.23);
        assert_eq!(body["estimated_eta"], 6, "2.23 km at 25 km/h, rounded up");
        assert_eq!(body["destination"], json!({"latitude": -6.2297, "longitude": 106.8295}));
        assert_eq!(host().call(handle, &msg).sent(), handled.sent(), "the same proposal on a redelivery");
    }

    #[test]
    fn a_request_without_candidates_or_with_bad_ones_is_rejected() {
        assert_eq!(
            host().call(handle, &request(json!([]))).outcome,
            Outcome::reject("message validation failed: `candidates` must name at least one driver")
        );
        let handled = host().call(handle, &request(json!([{"driver_id": "d1", "latitude": 0.0, "longitude": 190.0}])));
        assert_eq!(
            handled.outcome,
            Outcome::reject(
                "message validation failed: `candidates[0].driver_id` must be a uuid, found `d1`; \
                 `candidates[0].longitude` must be within -180..=180, found 190"
            )
        );
    }
}
