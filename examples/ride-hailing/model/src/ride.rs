//! Ride lifecycle: `ride.create.*` → `ride.created.*`, `ride.start.*` → `ride.started.*`,
//! `ride.complete.*` → `ride.completed.*` + `ride.payment.*`.
//!
//! Commands (`create`, `start`, `complete`) go to the rides service; the past-tense events go to
//! the users service. Every command carries both parties, since the rides service keeps no state.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use crate::{Addressed, Point};

/// `ride.create.{match_id}`: from the match service once a match is confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideCreate {
    pub match_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub pickup: Point,
    pub destination: Point,
}

impl Validate for RideCreate {
    fn validate(&self, v: &mut Validator) {
        v.uuid("match_id", &self.match_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.nested("pickup", &self.pickup).nested("destination", &self.destination);
    }
}

impl Addressed for RideCreate {
    fn subject_id(&self) -> &str {
        &self.match_id
    }
}

/// `ride.created.{ride_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideCreated {
    pub ride_id: String,
    pub match_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub pickup: Point,
    pub destination: Point,
    /// Pickup to destination, straight line, km.
    pub route_distance: f64,
}

/// `ride.start.{ride_id}`: the driver picked the passenger up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideStart {
    pub ride_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub started_at: Timestamp,
}

impl Validate for RideStart {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
    }
}

impl Addressed for RideStart {
    fn subject_id(&self) -> &str {
        &self.ride_id
    }
}

/// `ride.started.{ride_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideStarted {
    pub ride_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub started_at: Timestamp,
}

/// `ride.complete.{ride_id}`: the driver dropped the passenger off, after `distance_km`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideComplete {
    pub ride_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub distance_km: f64,
    pub started_at: Timestamp,
    pub completed_at: Timestamp,
}

impl Validate for RideComplete {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.range("distance_km", self.distance_km, 0.0, 1000.0);
        v.check("completed_at", self.completed_at >= self.started_at, || "must not be before `started_at`".to_owned());
    }
}

impl Addressed for RideComplete {
    fn subject_id(&self) -> &str {
        &self.ride_id
    }
}

/// `ride.completed.{ride_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideCompleted {
    pub ride_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub distance_km: f64,
    pub duration_min: f64,
    pub completed_at: Timestamp,
}

/// `ride.payment.{ride_id}`: what the passenger pays, in the currency's smallest unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RidePayment {
    pub ride_id: String,
    pub passenger_id: String,
    pub driver_id: String,
    pub currency: String,
    pub base_fare: u64,
    pub distance_fare: u64,
    pub total: u64,
}

/// The events are checked too: the users service validates what it consumes.
impl Validate for RideCreated {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("match_id", &self.match_id);
        v.uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.nested("pickup", &self.pickup).nested("destination", &self.destination).min("route_distance", self.route_distance, 0.0);
    }
}

impl Validate for RideStarted {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
    }
}

impl Validate for RideCompleted {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.min("distance_km", self.distance_km, 0.0).min("duration_min", self.duration_min, 0.0);
    }
}

impl Validate for RidePayment {
    fn validate(&self, v: &mut Validator) {
        v.uuid("ride_id", &self.ride_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.required("currency", &self.currency);
        let sum = self.base_fare.checked_add(self.distance_fare);
        v.check("total", sum == Some(self.total), || "must be `base_fare` + `distance_fare`".to_owned());
    }
}

macro_rules! addressed_by_ride {
    ($($ty:ty),*) => {$(
        impl Addressed for $ty {
            fn subject_id(&self) -> &str {
                &self.ride_id
            }
        }
    )*};
}

addressed_by_ride!(RideCreated, RideStarted, RideCompleted, RidePayment);
