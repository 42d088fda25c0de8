//! Strict payload validation: every problem of a message, named by field, in one error.
//!
//! Decoding with serde settles the shape (required fields, types, unknown fields with
//! `#[serde(deny_unknown_fields)]`); a [`Validate`] impl then checks the values (ranges, formats,
//! lengths). [`validated_json`] does both and reports whatever fails as a [`ValidationError`],
//! which a handler turns into a reject: a payload that is wrong now is wrong on every redelivery.
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Location { user_id: String, latitude: f64, longitude: f64 }
//!
//! impl Validate for Location {
//!     fn validate(&self, v: &mut Validator) {
//!         v.uuid("user_id", &self.user_id).latitude("latitude", self.latitude).longitude("longitude", self.longitude);
//!     }
//! }
//!
//! let err = validated_json::<Location>(br#"{"user_id": "x", "latitude": 91, "longitude": 0}"#).err().expect("invalid");
//! assert_eq!(
//!     err.to_string(),
//!     "message validation failed: `user_id` must be a uuid, found `x`; `latitude` must be within -90..=90, found 91"
//! );
//! ```

use std::fmt::{self, Display};

use serde::de::DeserializeOwned;

use crate::Timestamp;

/// Value checks for a decoded payload; see [`validated_json`].
pub trait Validate {
    /// Record every problem of `self` in `v` (do not stop at the first).
    fn validate(&self, v: &mut Validator);
}

/// One problem: the field (a dotted path such as `pickup.latitude`, or `payload` for the whole
/// message) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

/// Every problem found in a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub problems: Vec<FieldProblem>,
}

impl Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message validation failed: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if p.field == "payload" {
                write!(f, "{}", p.problem)?;
            } else {
                write!(f, "`{}` {}", p.field, p.problem)?;
            }
        }
        Ok(())
    }
}

/// Collects problems; each check is skipped silently when the value is fine.
#[derive(Debug, Default)]
pub struct Validator {
    prefix: String,
    problems: Vec<FieldProblem>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a problem with `field` unless `ok`.
    pub fn check(&mut self, field: &str, ok: bool, problem: impl FnOnce() -> String) -> &mut Self {
        if !ok {
            self.problems.push(FieldProblem { field: format!("{}{field}", self.prefix), problem: problem() });
        }
        self
    }

    /// Not empty and not only whitespace.
    pub fn required(&mut self, field: &str, value: &str) -> &mut Self {
        self.check(field, !value.trim().is_empty(), || "is required".to_owned())
    }

    /// A canonical hyphenated UUID.
    pub fn uuid(&mut self, field: &str, value: &str) -> &mut Self {
        self.check(field, crate::ids::is_uuid(value), || format!("must be a uuid, found `{value}`"))
    }

    /// Within `min..=max` (and not NaN).
    pub fn range<T: PartialOrd + Display>(&mut self, field: &str, value: T, min: T, max: T) -> &mut Self {
        let ok = value >= min && value <= max;
        self.check(field, ok, || format!("must be within {min}..={max}, found {value}"))
    }

    /// At least `min` (and not NaN).
    pub fn min<T: PartialOrd + Display>(&mut self, field: &str, value: T, min: T) -> &mut Self {
        let ok = value >= min;
        self.check(field, ok, || format!("must be at least {min}, found {value}"))
    }

    /// A latitude in degrees, -90 to 90.
    pub fn latitude(&mut self, field: &str, value: f64) -> &mut Self {
        self.range(field, value, -90.0, 90.0)
    }

    /// A longitude in degrees, -180 to 180.
    pub fn longitude(&mut self, field: &str, value: f64) -> &mut Self {
        self.range(field, value, -180.0, 180.0)
    }

    /// At most `max` characters.
    pub fn max_chars(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        let count = value.chars().count();
        self.check(field, count <= max, || format!("must be at most {max} characters, found {count}"))
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) -> &mut Self {
        self.check(field, allowed.contains(&value), || {
            let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            format!("must be one of {}, found `{value}`", list.join(", "))
        })
    }

    /// Usable as one token of a NATS subject: not empty, no `.`, `*`, `>` or whitespace. Check
    /// ids before putting them into a subject, or the publish fails (or lands somewhere else).
    pub fn subject_token(&mut self, field: &str, value: &str) -> &mut Self {
        let ok = is_subject_token(value);
        self.check(field, ok, || format!("must be usable as a subject token (no `.`, `*`, `>` or spaces), found `{value}`"))
    }

    /// An RFC 3339 timestamp; returns it when valid.
    pub fn timestamp(&mut self, field: &str, value: &str) -> Option<Timestamp> {
        match Timestamp::parse(value) {
            Ok(at) => Some(at),
            Err(e) => {
                self.check(field, false, || format!("must be an RFC 3339 timestamp: {e}"));
                None
            }
        }
    }

    /// Validate a nested value, its fields reported as `field.inner`.
    pub fn nested<T: Validate + ?Sized>(&mut self, field: &str, value: &T) -> &mut Self {
        let inner = format!("{}{field}.", self.prefix);
        let outer = std::mem::replace(&mut self.prefix, inner);
        value.validate(self);
        self.prefix = outer;
        self
    }

    /// Validate each item of a list, reported as `field[i].inner`.
    pub fn each<T: Validate>(&mut self, field: &str, items: &[T]) -> &mut Self {
        for (i, item) in items.iter().enumerate() {
            self.nested(&format!("{field}[{i}]"), item);
        }
        self
    }

    /// Whether nothing was found so far.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Err` with every problem found, if any.
    pub fn finish(self) -> Result<(), ValidationError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ValidationError { problems: self.problems }) }
    }
}

/// Run `value`'s checks.
pub fn validate<T: Validate + ?Sized>(value: &T) -> Result<(), ValidationError> {
    let mut v = Validator::new();
    value.validate(&mut v);
    v.finish()
}

/// Decode a JSON payload as `T` and validate it. A payload that does not decode (not JSON, a
/// missing field, a wrong type, an unknown field under `deny_unknown_fields`) is reported as a
/// problem with the `payload`.
pub fn validated_json<T: DeserializeOwned + Validate>(payload: &[u8]) -> Result<T, ValidationError> {
    let value: T = serde_json::from_slice(payload).map_err(|e| ValidationError {
        problems: vec![FieldProblem { field: "payload".to_owned(), problem: format!("payload is not a valid message: {e}") }],
    })?;
    validate(&value)?;
    Ok(value)
}

/// Whether `value` can be one token of a NATS subject (see [`Validator::subject_token`]).
pub(crate) fn is_subject_token(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Point {
        lat: f64,
        lng: f64,
    }

    impl Validate for Point {
        fn validate(&self, v: &mut Validator) {
            v.latitude("lat", self.lat).longitude("lng", self.lng);
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Trip {
        id: String,
        kind: String,
        seats: u32,
        stops: Vec<Point>,
        at: String,
    }

    impl Validate for Trip {
        fn validate(&self, v: &mut Validator) {
            v.uuid("id", &self.id).one_of("kind", &self.kind, &["ride", "share"]).range("seats", self.seats, 1, 6);
            v.each("stops", &self.stops).timestamp("at", &self.at);
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let payload = br#"{"id":"nope","kind":"boat","seats":9,"stops":[{"lat":1,"lng":2},{"lat":95,"lng":-181}],"at":"noon"}"#;
        let err = validated_json::<Trip>(payload).err().expect("invalid");
        assert_eq!(
            err.to_string(),
            "message validation failed: `id` must be a uuid, found `nope`; \
             `kind` must be one of `ride`, `share`, found `boat`; `seats` must be within 1..=6, found 9; \
             `stops[1].lat` must be within -90..=90, found 95; `stops[1].lng` must be within -180..=180, found -181; \
             `at` must be an RFC 3339 timestamp: invalid timestamp `noon`: expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"
        );
        assert_eq!(err.problems.len(), 6);
        assert_eq!(err.problems[3].field, "stops[1].lat");
    }

    #[test]
    fn shape_errors_come_from_serde() {
        let err = validated_json::<Point>(br#"{"lat": 1}"#).err().expect("missing lng");
        assert_eq!(err.to_string(), "message validation failed: payload is not a valid message: missing field `lng` at line 1 column 10");
        let err = validated_json::<Point>(br#"{"lat": 1, "lng": 2, "alt": 3}"#).err().expect("unknown");
        assert!(err.to_string().contains("unknown field `alt`"), "{err}");
        assert!(validated_json::<Point>(br#"{"lat": -90, "lng": 180}"#).is_ok());
    }

    #[test]
    fn small_checks() {
        let mut v = Validator::new();
        v.required("name", "  ").min("distance", -0.5, 0.0).max_chars("note", "héllo", 4).range("x", f64::NAN, 0.0, 1.0);
        v.subject_token("session", "a.b").subject_token("ok", "sess_1");
        assert!(!v.is_ok());
        let problems: Vec<String> = v.finish().expect_err("problems").problems.into_iter().map(|p| p.field).collect();
        assert_eq!(problems, ["name", "distance", "note", "x", "session"]);
        assert_eq!(validate(&Point { lat: 0.0, lng: 0.0 }), Ok(()));
    }
}
