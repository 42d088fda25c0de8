//! Location flow and driver availability: `location.update.*`, `location.stored.*`,
//! `user.beacon.*`.

use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use crate::Addressed;

/// `location.update.{user_id}`: a client's position, from the users service (the seed's struct).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationUpdate {
    pub user_id: String,
    pub latitude: f64,
    pub longitude: f64,
    pub timestamp: Timestamp,
}

impl Validate for LocationUpdate {
    fn validate(&self, v: &mut Validator) {
        v.uuid("user_id", &self.user_id).latitude("latitude", self.latitude).longitude("longitude", self.longitude);
    }
}

impl Addressed for LocationUpdate {
    fn subject_id(&self) -> &str {
        &self.user_id
    }
}

/// `location.stored.{user_id}`: the location service kept the position until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationStored {
    pub user_id: String,
    pub latitude: f64,
    pub longitude: f64,
    pub timestamp: Timestamp,
    pub expires_at: Timestamp,
}

impl Validate for LocationStored {
    fn validate(&self, v: &mut Validator) {
        v.uuid("user_id", &self.user_id).latitude("latitude", self.latitude).longitude("longitude", self.longitude);
        v.check("expires_at", self.expires_at > self.timestamp, || "must be after `timestamp`".to_owned());
    }
}

impl Addressed for LocationStored {
    fn subject_id(&self) -> &str {
        &self.user_id
    }
}

/// `user.beacon.{driver_id}`: a driver going on or off duty, where they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconStatus {
    pub driver_id: String,
    pub available: bool,
    pub latitude: f64,
    pub longitude: f64,
    pub timestamp: Timestamp,
}

impl Validate for BeaconStatus {
    fn validate(&self, v: &mut Validator) {
        v.uuid("driver_id", &self.driver_id).latitude("latitude", self.latitude).longitude("longitude", self.longitude);
    }
}

impl Addressed for BeaconStatus {
    fn subject_id(&self) -> &str {
        &self.driver_id
    }
}
