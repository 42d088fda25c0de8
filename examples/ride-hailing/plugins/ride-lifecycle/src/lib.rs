//! `ride-lifecycle`: the rides service, one step per command of the ride lifecycle flow.
//!
//! | in                     | out                                                   |
//! |------------------------|-------------------------------------------------------|
//! | `ride.create.{match}`  | `ride.created.{ride}` (ride id derived from the match) |
//! | `ride.start.{ride}`    | `ride.started.{ride}`                                 |
//! | `ride.complete.{ride}` | `ride.completed.{ride}`, then `ride.payment.{ride}`   |
//!
//! The fare is `base_fare + ceil(distance_km × per_km)` in the currency's smallest unit. The
//! service keeps no ride records (instances are pooled and replaced), so each command carries the
//! parties and the facts its step needs; in the seed the service would check them against its
//! database.
//!
//! ```toml
//! [plugins.ride-lifecycle.config]
//! currency = "IDR"
//! base_fare = 5000
//! per_km = 3000
//! ```

use ride_model::{RideComplete, RideCompleted, RideCreate, RideCreated, RidePayment, RideStart, RideStarted, read, round2};
use serde::{Deserialize, Serialize};
use switchyard_sdk::ids::derive_uuid;
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fare {
    currency: String,
    base_fare: u64,
    per_km: u64,
}

#[init]
fn init(config: &PluginConfig) -> Result<(), String> {
    let fare = fare(config)?;
    if fare.currency.len() != 3 || !fare.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!("`currency` must be an ISO 4217 code such as `IDR`, found `{}`", fare.currency));
    }
    Ok(())
}

fn fare(config: &PluginConfig) -> Result<Fare, String> {
    config.deserialize().map_err(|e| e.to_string())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    match msg.subject.split('.').nth(1) {
        Some("create") => create(msg, ctx),
        Some("start") => start(msg, ctx),
        Some("complete") => {
            let fare = fare(ctx.config()).or_reject_with("plugin configuration")?;
            complete(msg, ctx, &fare)
        }
        _ => Err(Stop::reject(format!("`{}` is not a ride command (create, start, complete)", msg.subject))),
    }
}

fn create(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let create: RideCreate = read(msg)?;
    let created = RideCreated {
        ride_id: derive_uuid(&["ride", create.match_id.as_str()]),
        route_distance: round2(create.pickup.distance_km(&create.destination)),
        match_id: create.match_id,
        driver_id: create.driver_id,
        passenger_id: create.passenger_id,
        pickup: create.pickup,
        destination: create.destination,
    };
    publish(ctx, "ride.created", &created.ride_id, &created)?;
    Ok(Outcome::Ack)
}

fn start(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let start: RideStart = read(msg)?;
    let started =
        RideStarted { ride_id: start.ride_id, driver_id: start.driver_id, passenger_id: start.passenger_id, started_at: start.started_at };
    publish(ctx, "ride.started", &started.ride_id, &started)?;
    Ok(Outcome::Ack)
}

fn complete(msg: &Message, ctx: &mut Context, fare: &Fare) -> Result<Outcome, Stop> {
    let done: RideComplete = read(msg)?;
    let duration = done.completed_at.since(done.started_at).unwrap_or_default();
    let completed = RideCompleted {
        ride_id: done.ride_id.clone(),
        driver_id: done.driver_id.clone(),
        passenger_id: done.passenger_id.clone(),
        distance_km: done.distance_km,
        duration_min: round2(duration.as_secs_f64() / 60.0),
        completed_at: done.completed_at,
    };
    // Validation bounds the distance to 0..=1000 km, so the product fits easily.
    let distance_fare = (done.distance_km * fare.per_km as f64).ceil() as u64;
    let payment = RidePayment {
        ride_id: done.ride_id,
        passenger_id: done.passenger_id,
        driver_id: done.driver_id,
        currency: fare.currency.clone(),
        base_fare: fare.base_fare,
        distance_fare,
        total: fare.base_fare.saturating_add(distance_fare),
    };
    publish(ctx, "ride.completed", &completed.ride_id, &completed)?;
    publish(ctx, "ride.payment", &payment.ride_id, &payment)?;
    Ok(Outcome::Ack)
}

fn publish<T: Serialize>(ctx: &mut Context, prefix: &str, ride_id: &str, value: &T) -> Result<(), Stop> {
    let subject = format!("{prefix}.{ride_id}");
    ctx.publish_json(&subject, value).or_reject_with(format!("publishing to `{subject}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const MATCH: &str = "1f2e3d4c-5b6a-8798-a0b1-c2d3e4f5a6b7";
    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
    const PASSENGER: &str = "7d3e2a10-5b4c-4e8f-a1d2-6c9b0e3f4a22";

    fn host() -> MockHost {
        MockHost::new()
            .allow("ride.*.*")
            .config(json!({"currency": "IDR", "base_fare": 5000, "per_km": 3000}))
            .init(init)
            .expect("accepted")
    }

    fn bodies(handled: &switchyard_sdk::testing::Handled) -> Vec<(String, Value)> {
        handled.sent().iter().map(|p| (p.subject.clone(), serde_json::from_slice(&p.payload).expect("json"))).collect()
    }

    #[test]
    fn create_start_complete() {
        let create = Message::builder(format!("ride.create.{MATCH}"))
            .json(&json!({"match_id": MATCH, "driver_id": DRIVER, "passenger_id": PASSENGER,
                          "pickup": {"latitude": -6.1754, "longitude": 106.8272},
                          "destination": {"latitude": -6.2297, "longitude": 106.8295}}))
            .build();
        let created = bodies(&host().call(handle, &create));
        let ride = derive_uuid(&["ride", MATCH]);
        assert_eq!(created[0].0, format!("ride.created.{ride}"));
        assert_eq!(created[0].1["route_distance"], 6.04);
        assert_eq!(created[0].1["match_id"], MATCH);

        let start = Message::builder(format!("ride.start.{ride}"))
            .json(&json!({"ride_id": ride, "driver_id": DRIVER, "passenger_id": PASSENGER, "started_at": "2024-03-20T10:10:00Z"}))
            .build();
        let started = bodies(&host().call(handle, &start));
        assert_eq!(
            started,
            [(
                format!("ride.started.{ride}"),
                json!({"ride_id": ride, "driver_id": DRIVER,
            "passenger_id": PASSENGER, "started_at": "2024-03-20T10:10:00Z"})
            )]
        );

        let complete = Message::builder(format!("ride.complete.{ride}"))
            .json(&json!({"ride_id": ride, "driver_id": DRIVER, "passenger_id": PASSENGER, "distance_km": 6.5,
                          "started_at": "2024-03-20T10:10:00Z", "completed_at": "2024-03-20T10:31:30Z"}))
            .build();
        let done = bodies(&host().call(handle, &complete));
        let subjects: Vec<&str> = done.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(subjects, [format!("ride.completed.{ride}"), format!("ride.payment.{ride}")]);
        assert_eq!(done[0].1["duration_min"], 21.5);
        assert_eq!(
            done[1].1,
            json!({"ride_id": ride, "passenger_id": PASSENGER, "driver_id": DRIVER, "currency": "IDR",
                   "base_fare": 5000, "distance_fare": 19500, "total": 24500})
        );
    }

    #[test]
    fn bad_commands_are_rejected() {
        let unknown = host().call(handle, &Message::builder("ride.cancel.x").text("{}").build());
        assert_eq!(unknown.outcome, Outcome::reject("`ride.cancel.x` is not a ride command (create, start, complete)"));
        let backwards = Message::builder("ride.complete.r")
            .json(&json!({"ride_id": "r", "driver_id": DRIVER, "passenger_id": PASSENGER, "distance_km": -1.0,
                          "started_at": "2024-03-20T10:10:00Z", "completed_at": "2024-03-20T10:00:00Z"}))
            .build();
        assert_eq!(
            host().call(handle, &backwards).outcome,
            Outcome::reject(
                "message validation failed: `ride_id` must be a uuid, found `r`; `distance_km` must be within 0..=1000, found -1; \
                 `completed_at` must not be before `started_at`"
            )
        );
    }

    #[test]
    fn init_checks_the_currency() {
        let refused = MockHost::new().config(json!({"currency": "rupiah", "base_fare": 1, "per_km": 1})).init(init).err();
        assert_eq!(refused.as_deref(), Some("`currency` must be an ISO 4217 code such as `IDR`, found `rupiah`"));
    }
}
