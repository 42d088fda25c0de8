//! [`Timestamp`]: an instant in UTC, read and written as RFC 3339 (`2024-03-20T10:00:00Z`).
//!
//! Message schemas carry times as RFC 3339 strings; this type validates them on the way in and
//! writes them the same way on the way out, without a date-time dependency in every plugin. It
//! covers what RFC 3339 can express: years 0000 to 9999, any UTC offset, up to nanoseconds.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use switchyard_abi::Message;

/// An instant, stored as seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp `{text}`: {reason}")]
pub struct TimestampError {
    text: String,
    reason: &'static str,
}

const NANOS_PER_SEC: i128 = 1_000_000_000;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what RFC 3339 can write.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// The current time. In a plugin this is the host's wall clock (WASI `clock_time_get`).
    ///
    /// Output derived from the clock differs between deliveries of the same message; for
    /// output that must be identical on a redelivery, prefer a time taken from the input (the
    /// message's own timestamp, or [`Timestamp::of_delivery`]).
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp::from_unix_nanos(since.as_nanos() as i128),
            Err(before) => Timestamp::from_unix_nanos(-(before.duration().as_nanos() as i128)),
        }
    }

    /// When a JetStream message was stored in its stream (absent for core NATS messages): the
    /// same on every delivery of that message.
    pub fn of_delivery(msg: &Message) -> Option<Timestamp> {
        msg.delivery.as_ref().map(|d| Timestamp::from_unix_nanos(d.timestamp_unix_nanos))
    }

    /// From nanoseconds since the epoch, clamped to the years RFC 3339 can write.
    pub fn from_unix_nanos(nanos: i128) -> Timestamp {
        let secs = nanos.div_euclid(NANOS_PER_SEC);
        let sub = nanos.rem_euclid(NANOS_PER_SEC) as u32;
        if secs < i128::from(MIN_SECS) {
            Timestamp { secs: MIN_SECS, nanos: 0 }
        } else if secs > i128::from(MAX_SECS) {
            Timestamp { secs: MAX_SECS, nanos: 999_999_999 }
        } else {
            Timestamp { secs: secs as i64, nanos: sub }
        }
    }

    /// From whole seconds since the epoch (clamped like [`Timestamp::from_unix_nanos`]).
    pub fn from_unix_seconds(secs: i64) -> Timestamp {
        Timestamp::from_unix_nanos(i128::from(secs) * NANOS_PER_SEC)
    }

    /// Seconds since the epoch (negative before 1970).
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds since the epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * NANOS_PER_SEC + i128::from(self.nanos)
    }

    /// Milliseconds since the epoch, rounded down.
    pub fn unix_millis(&self) -> i64 {
        self.unix_nanos().div_euclid(1_000_000) as i64
    }

    /// This instant plus `duration` (saturating at year 9999).
    pub fn plus(&self, duration: Duration) -> Timestamp {
        Timestamp::from_unix_nanos(self.unix_nanos().saturating_add(duration.as_nanos() as i128))
    }

    /// How long after `earlier` this is; `None` when it is before it.
    pub fn since(&self, earlier: Timestamp) -> Option<Duration> {
        let delta = self.unix_nanos() - earlier.unix_nanos();
        u64::try_from(delta).ok().map(Duration::from_nanos)
    }

    /// Parse an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        parse(text.as_bytes()).map_err(|reason| TimestampError { text: text.to_owned(), reason })
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with `Z`; the fraction is written as 3, 6 or 9 digits, only when non-zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let of_day = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")?;
        match self.nanos {
            0 => {}
            n if n % 1_000_000 == 0 => write!(f, ".{:03}", n / 1_000_000)?,
            n if n % 1_000 == 0 => write!(f, ".{:06}", n / 1_000)?,
            n => write!(f, ".{n:09}")?,
        }
        f.write_str("Z")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse(b: &[u8]) -> Result<Timestamp, &'static str> {
    const SHAPE: &str = "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`";
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(SHAPE);
    }
    let num = |from: usize, to: usize| -> Result<i64, &'static str> {
        b[from..to].iter().try_fold(0i64, |n, &c| if c.is_ascii_digit() { Ok(n * 10 + i64::from(c - b'0')) } else { Err(SHAPE) })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    if hour > 23 || minute > 59 {
        return Err("time of day out of range");
    }
    if second > 59 {
        return Err("second out of range (leap seconds are not supported)");
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b[at] == b'.' {
        let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("a `.` must be followed by digits");
        }
        if digits > 9 {
            return Err("more than 9 fractional digits");
        }
        let value = num(at + 1, at + 1 + digits)? as u32;
        nanos = value * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| if c.is_ascii_digit() { Ok(i64::from(c - b'0')) } else { Err(SHAPE) };
            let (h, m) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
            if h > 23 || m > 59 {
                return Err("utc offset out of range");
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        [] => return Err("missing utc offset (`Z` or `+HH:MM`)"),
        _ => return Err(SHAPE),
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    if !(MIN_SECS..=MAX_SECS).contains(&secs) {
        return Err("outside the years 0000 to 9999 once converted to utc");
    }
    Ok(Timestamp { secs, nanos })
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageExt;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_and_writes_utc() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), Timestamp::UNIX_EPOCH);
        assert_eq!(ts("2024-03-20T10:00:00Z").unix_seconds(), 1_710_928_800);
        assert_eq!(ts("2024-03-20T10:00:00Z").to_string(), "2024-03-20T10:00:00Z");
        assert_eq!(ts("2025-11-17T20:30:05.123Z").to_string(), "2025-11-17T20:30:05.123Z");
        assert_eq!(ts("2025-11-17T20:30:05.1Z").to_string(), "2025-11-17T20:30:05.100Z");
        assert_eq!(ts("2025-11-17T20:30:05.000123Z").to_string(), "2025-11-17T20:30:05.000123Z");
        assert_eq!(ts("2025-11-17T20:30:05.123456789z").unix_nanos() % 1_000_000_000, 123_456_789);
        assert_eq!(ts("0000-01-01T00:00:00Z").to_string(), "0000-01-01T00:00:00Z");
        assert_eq!(ts("9999-12-31T23:59:59.999999999Z").to_string(), "9999-12-31T23:59:59.999999999Z");
        assert_eq!(ts("1969-12-31T23:59:59.5Z").unix_millis(), -500);
    }

    #[test]
    fn offsets_convert_to_utc() {
        assert_eq!(ts("2024-03-20T12:30:00+02:30"), ts("2024-03-20T10:00:00Z"));
        assert_eq!(ts("2024-03-19T23:00:00-11:00").to_string(), "2024-03-20T10:00:00Z");
    }

    #[test]
    fn leap_years_and_round_trips() {
        assert!(Timestamp::parse("2024-02-29T00:00:00Z").is_ok());
        assert_eq!(
            Timestamp::parse("2023-02-29T00:00:00Z").expect_err("not a leap year").to_string(),
            "invalid timestamp `2023-02-29T00:00:00Z`: day out of range for the month"
        );
        assert!(Timestamp::parse("2000-02-29T00:00:00Z").is_ok() && Timestamp::parse("1900-02-29T00:00:00Z").is_err());
        // Every day over four centuries survives a write and a read.
        let mut day = Timestamp::parse("1899-12-31T23:59:59.25Z").expect("start");
        for _ in 0..146_100 {
            assert_eq!(Timestamp::parse(&day.to_string()), Ok(day));
            day = day.plus(Duration::from_secs(86_400));
        }
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for (text, reason) in [
            ("2024-03-20", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
            ("2024-03-20 10:00:00Z", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
            ("2024-03-20T10:00:00", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
            ("2024-03-20T10:00:00.Z", "a `.` must be followed by digits"),
            ("2024-03-20T10:00:00.1234567891Z", "more than 9 fractional digits"),
            ("2024-13-20T10:00:00Z", "month out of range"),
            ("2024-03-20T24:00:00Z", "time of day out of range"),
            ("2024-03-20T23:59:60Z", "second out of range (leap seconds are not supported)"),
            ("2024-03-20T10:00:00+25:00", "utc offset out of range"),
            ("2024-03-20T10:00:00+0200", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
            ("0000-01-01T00:00:00+01:00", "outside the years 0000 to 9999 once converted to utc"),
            ("2024-03-20T10:00:00Zjunk", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
            ("２０２４-03-20T10:00:00Z", "expected RFC 3339, e.g. `2024-03-20T10:00:00Z`"),
        ] {
            let err = Timestamp::parse(text).expect_err(text);
            assert_eq!(err.to_string(), format!("invalid timestamp `{text}`: {reason}"));
        }
    }

    #[test]
    fn arithmetic_clock_and_delivery() {
        let start = ts("2024-03-20T10:00:00Z");
        let later = start.plus(Duration::from_millis(1500));
        assert_eq!(later.to_string(), "2024-03-20T10:00:01.500Z");
        assert_eq!(later.since(start), Some(Duration::from_millis(1500)));
        assert_eq!(start.since(later), None);
        assert!(Timestamp::now() > start, "the clock is past 2024");
        assert_eq!(Timestamp::from_unix_nanos(i128::MAX).to_string(), "9999-12-31T23:59:59.999999999Z");

        let stored = Message::builder("a").jetstream("S", 1).build();
        assert_eq!(Timestamp::of_delivery(&stored), Some(Timestamp::UNIX_EPOCH));
        assert_eq!(Timestamp::of_delivery(&Message::builder("a").build()), None);
    }

    #[test]
    fn serde_as_a_string() {
        let value: Timestamp = serde_json::from_str(r#""2024-03-20T10:00:00+01:00""#).expect("json");
        assert_eq!(serde_json::to_string(&value).expect("json"), r#""2024-03-20T09:00:00Z""#);
        let err = serde_json::from_str::<Timestamp>(r#""yesterday""#).expect_err("not a timestamp");
        assert!(err.to_string().starts_with("invalid timestamp `yesterday`: expected RFC 3339"), "{err}");
    }
}
