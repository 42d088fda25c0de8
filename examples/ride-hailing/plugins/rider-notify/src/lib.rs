//! `rider-notify`: the users service's consumers — it turns what the other services publish into
//! notifications for the clients, on `ws.{user_id}` (where the seed's users service writes to the
//! client's WebSocket).
//!
//! | consumed                | notified                   |
//! |-------------------------|----------------------------|
//! | `location.stored.*`     | the user                   |
//! | `match.proposal.*`      | the driver                 |
//! | `match.confirmed.*`     | the passenger, then driver |
//! | `ride.created.*`, `ride.started.*`, `ride.completed.*`, `ride.payment.*` | the passenger, then driver |
//!
//! A notification is `{"event": "<subject without its id>", "data": <the message>}`. What it
//! consumes it validates as strictly as the producers do.

use ride_model::{Addressed, LocationStored, MatchConfirmed, MatchProposal, RideCompleted, RideCreated, RidePayment, RideStarted, read};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_sdk::prelude::*;

#[derive(Debug, Serialize)]
struct Notification<'a, T> {
    event: &'a str,
    data: &'a T,
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let event = msg.subject.rsplit_once('.').map_or(msg.subject.as_str(), |(event, _)| event);
    match event {
        "location.stored" => notify::<LocationStored>(msg, ctx, event, |m| vec![m.user_id.clone()]),
        "match.proposal" => notify::<MatchProposal>(msg, ctx, event, |m| vec![m.driver_id.clone()]),
        "match.confirmed" => notify::<MatchConfirmed>(msg, ctx, event, |m| parties(&m.passenger_id, &m.driver_id)),
        "ride.created" => notify::<RideCreated>(msg, ctx, event, |m| parties(&m.passenger_id, &m.driver_id)),
        "ride.started" => notify::<RideStarted>(msg, ctx, event, |m| parties(&m.passenger_id, &m.driver_id)),
        "ride.completed" => notify::<RideCompleted>(msg, ctx, event, |m| parties(&m.passenger_id, &m.driver_id)),
        "ride.payment" => notify::<RidePayment>(msg, ctx, event, |m| parties(&m.passenger_id, &m.driver_id)),
        _ => Err(Stop::reject(format!("no notification for `{}`", msg.subject))),
    }
}

fn parties(passenger: &str, driver: &str) -> Vec<String> {
    vec![passenger.to_owned(), driver.to_owned()]
}

/// Read `msg` as `T` and send it to each of `recipients`.
fn notify<T>(msg: &Message, ctx: &mut Context, event: &str, recipients: impl Fn(&T) -> Vec<String>) -> Result<Outcome, Stop>
where
    T: DeserializeOwned + Validate + Addressed + Serialize,
{
    let data: T = read(msg)?;
    let notification = Notification { event, data: &data };
    for user in recipients(&data) {
        let subject = format!("ws.{user}");
        ctx.publish_json(&subject, &notification).or_reject_with(format!("publishing to `{subject}`"))?;
    }
    Ok(Outcome::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const RIDE: &str = "2a3b4c5d-6e7f-8091-a2b3-c4d5e6f70819";
    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";
    const PASSENGER: &str = "7d3e2a10-5b4c-4e8f-a1d2-6c9b0e3f4a22";

    #[test]
    fn both_parties_hear_about_the_payment() {
        let payment = json!({"ride_id": RIDE, "passenger_id": PASSENGER, "driver_id": DRIVER, "currency": "IDR",
                             "base_fare": 5000, "distance_fare": 19500, "total": 24500});
        let msg = Message::builder(format!("ride.payment.{RIDE}")).json(&payment).build();
        let handled = MockHost::new().allow("ws.*").call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let sent: Vec<(String, Value)> =
            handled.sent().iter().map(|p| (p.subject.clone(), serde_json::from_slice(&p.payload).expect("json"))).collect();
        let expected = json!({"event": "ride.payment", "data": payment});
        assert_eq!(sent, [(format!("ws.{PASSENGER}"), expected.clone()), (format!("ws.{DRIVER}"), expected)]);
    }

    #[test]
    fn an_inconsistent_payment_is_rejected() {
        let payment = json!({"ride_id": RIDE, "passenger_id": PASSENGER, "driver_id": DRIVER, "currency": "IDR",
                             "base_fare": 5000, "distance_fare": 19500, "total": 1});
        let msg = Message::builder(format!("ride.payment.{RIDE}")).json(&payment).build();
        let handled = MockHost::new().allow("ws.*").call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::reject("message validation failed: `total` must be `base_fare` + `distance_fare`"));
        assert!(handled.sent().is_empty());
    }

    #[test]
    fn unknown_subjects_are_rejected() {
        let handled = MockHost::new().allow("ws.*").call(handle, &Message::builder("ride.teleported.x").text("{}").build());
        assert_eq!(handled.outcome, Outcome::reject("no notification for `ride.teleported.x`"));
    }
}
