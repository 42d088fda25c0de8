//! Driver matching flow: `match.request.*` → `match.proposal.*` → `match.accepted.*` →
//! `match.confirmed.*`.
//!
//! The candidates are the drivers whose positions the location service stored in the `LOCATIONS`
//! key-value bucket (Redis in the seed); the proposal and the acceptance carry pickup and
//! destination on to the ride.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use crate::{Addressed, Point};

/// `match.request.{passenger_id}`: a passenger asks for a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    pub request_id: String,
    pub passenger_id: String,
    pub pickup: Point,
    pub destination: Point,
}

impl Validate for MatchRequest {
    fn validate(&self, v: &mut Validator) {
        v.uuid("request_id", &self.request_id).uuid("passenger_id", &self.passenger_id);
        v.nested("pickup", &self.pickup).nested("destination", &self.destination);
    }
}

impl Addressed for MatchRequest {
    fn subject_id(&self) -> &str {
        &self.passenger_id
    }
}

/// `match.proposal.{driver_id}`: the seed's `MatchProposal`, plus the trip, for the driver to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchProposal {
    pub match_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    /// Driver to pickup, km.
    pub distance: f64,
    /// Driver to pickup, minutes.
    pub estimated_eta: u32,
    pub pickup: Point,
    pub destination: Point,
}

impl Validate for MatchProposal {
    fn validate(&self, v: &mut Validator) {
        v.uuid("match_id", &self.match_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.min("distance", self.distance, 0.0).nested("pickup", &self.pickup).nested("destination", &self.destination);
    }
}

impl Addressed for MatchProposal {
    fn subject_id(&self) -> &str {
        &self.driver_id
    }
}

/// `match.accepted.{match_id}`: the driver accepted the proposal (the users service relays it with
/// the proposal's trip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchAccepted {
    pub match_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub pickup: Point,
    pub destination: Point,
    pub accepted_at: Timestamp,
}

impl Validate for MatchAccepted {
    fn validate(&self, v: &mut Validator) {
        v.uuid("match_id", &self.match_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.nested("pickup", &self.pickup).nested("destination", &self.destination);
        v.check("driver_id", self.driver_id != self.passenger_id, || "must differ from `passenger_id`".to_owned());
    }
}

impl Addressed for MatchAccepted {
    fn subject_id(&self) -> &str {
        &self.match_id
    }
}

/// `match.confirmed.{match_id}`: the match service confirmed the pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfirmed {
    pub match_id: String,
    pub driver_id: String,
    pub passenger_id: String,
    pub pickup: Point,
    pub destination: Point,
    pub confirmed_at: Timestamp,
}

impl Validate for MatchConfirmed {
    fn validate(&self, v: &mut Validator) {
        v.uuid("match_id", &self.match_id).uuid("driver_id", &self.driver_id).uuid("passenger_id", &self.passenger_id);
        v.nested("pickup", &self.pickup).nested("destination", &self.destination);
    }
}

impl Addressed for MatchConfirmed {
    fn subject_id(&self) -> &str {
        &self.match_id
    }
}
