//! The messages of the ride-hailing example, shared by its plugins like a schema package shared
//! by services: one struct per message, strict (`deny_unknown_fields`, every field required
//! unless marked), each with its value checks ([`Validate`]).
//!
//! Subjects follow the seed's `{service}.{action}.{entity}`: the last token is the id of the user,
//! match or ride the message is about, and [`read`] refuses a message whose subject names another
//! id than its payload (a misrouted message must not update the wrong ride).

mod location;
mod matching;
mod ride;

pub use location::{BeaconStatus, LocationStored, LocationUpdate};
pub use matching::{MatchAccepted, MatchConfirmed, MatchProposal, MatchRequest};
pub use ride::{RideComplete, RideCompleted, RideCreate, RideCreated, RidePayment, RideStart, RideStarted};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchyard_sdk::FieldProblem;
use switchyard_sdk::prelude::*;

/// A position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
}

impl Validate for Point {
    fn validate(&self, v: &mut Validator) {
        v.latitude("latitude", self.latitude).longitude("longitude", self.longitude);
    }
}

impl Point {
    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(&self, other: &Point) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.longitude - self.longitude).to_radians();
        let a = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }
}

/// A message whose subject ends with the id of what it is about.
pub trait Addressed {
    /// The id the subject's last token must equal.
    fn subject_id(&self) -> &str;
}

/// Decode, validate, and check the subject against the payload: the whole of "strict payload
/// validation". Every problem is reported; a handler rejects on `Err` (never retries: the same
/// bytes fail on every delivery).
pub fn read<T: DeserializeOwned + Validate + Addressed>(msg: &Message) -> Result<T, ValidationError> {
    let value: T = validated_json(&msg.payload)?;
    let token = msg.subject.rsplit('.').next().unwrap_or_default();
    if token != value.subject_id() {
        return Err(ValidationError {
            problems: vec![FieldProblem {
                field: "payload".to_owned(),
                problem: format!("subject `{}` names `{token}` but the payload is about `{}`", msg.subject, value.subject_id()),
            }],
        });
    }
    Ok(value)
}

/// Round to 2 decimals (km, minutes shown to people).
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DRIVER: &str = "0b7c1e52-6f1a-4f0e-9d43-2a5c8e9b1f01";

    #[test]
    fn distances() {
        let monas = Point { latitude: -6.1754, longitude: 106.8272 };
        let bundaran_hi = Point { latitude: -6.1950, longitude: 106.8230 };
        let d = monas.distance_km(&bundaran_hi);
        assert!((d - 2.22).abs() < 0.02, "{d}");
        assert_eq!(monas.distance_km(&monas), 0.0);
        assert_eq!(round2(2.2249), 2.22);
    }

    #[test]
    fn read_checks_shape_values_and_subject() {
        let update = json!({"user_id": DRIVER, "latitude": -6.2, "longitude": 106.8, "timestamp": "2024-03-20T10:00:00Z"});
        let msg = Message::builder(format!("location.update.{DRIVER}")).json(&update).build();
        assert!(read::<LocationUpdate>(&msg).is_ok());

        let elsewhere = Message::builder("location.update.someone").json(&update).build();
        assert_eq!(
            read::<LocationUpdate>(&elsewhere).err().map(|e| e.to_string()),
            Some(format!(
                "message validation failed: subject `location.update.someone` names `someone` but the payload is about `{DRIVER}`"
            ))
        );
        let bad = json!({"user_id": "x", "latitude": 123.0, "longitude": 106.8, "timestamp": "2024-03-20T10:00:00Z"});
        let msg = Message::builder("location.update.x").json(&bad).build();
        assert_eq!(
            read::<LocationUpdate>(&msg).err().map(|e| e.to_string()),
            Some(
                "message validation failed: `user_id` must be a uuid, found `x`; `latitude` must be within -90..=90, found 123".to_owned()
            )
        );
        let extra = json!({"user_id": DRIVER, "latitude": 1.0, "longitude": 1.0, "timestamp": "2024-03-20T10:00:00Z", "speed": 3});
        let msg = Message::builder(format!("location.update.{DRIVER}")).json(&extra).build();
        let err = read::<LocationUpdate>(&msg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("message validation failed: payload is not a valid message: unknown field `speed`"), "{err}");
    }
}
