//! Serde helpers for durations ("30s", "1h 30m") and byte sizes ("64MiB").
//!
//! Used with `#[serde(deserialize_with = …)]` in the schema instead of
//! `humantime_serde` and `ByteSize`'s own impl, whose errors hide the reason
//! ("expected a duration", "expected parsable string"). These keep it:
//! "invalid duration `5 parsecs`: unknown unit `parsecs` …".

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A humantime duration string.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    HumanDuration::deserialize(d).map(|h| h.0)
}

/// An optional humantime duration string.
pub(super) fn option_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<HumanDuration>::deserialize(d).map(|o| o.map(|h| h.0))
}

/// An optional cron expression: five fields, or six with seconds first.
pub(super) fn option_cron<'de, D: Deserializer<'de>>(d: D) -> Result<Option<croner::Cron>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
    parser.parse(&text).map(Some).map_err(|err| serde::de::Error::custom(format!("invalid cron expression `{text}`: {err}")))
}

/// An optional array of humantime duration strings, e.g. `["1s", "5s"]`.
pub(super) fn option_duration_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    Option::<Vec<HumanDuration>>::deserialize(d).map(|o| o.map(|v| v.into_iter().map(|h| h.0).collect()))
}

/// A byte size: a string with a unit ("64MiB", "512 KiB", "1GB") or an integer
/// number of bytes.
pub(super) fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
    HumanSize::deserialize(d).map(|h| h.0)
}

/// An optional byte size.
pub(super) fn option_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ByteSize>, D::Error> {
    Option::<HumanSize>::deserialize(d).map(|o| o.map(|h| h.0))
}

struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Integers are refused on purpose: `5` could mean ms or s.
                f.write_str("a duration string such as `30s` or `1h 30m`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                if s.trim().is_empty() {
                    return Err(E::custom("a duration must not be empty, e.g. `30s`"));
                }
                humantime::parse_duration(s)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format!("invalid duration `{s}`: {}", duration_reason(&e))))
            }
        }
        d.deserialize_str(V)
    }
}

/// humantime's reasons, reworded: "expected number at 0" means little in a
/// config file.
fn duration_reason(e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    const FORM: &str = "write a number and a unit, e.g. `30s`, `250ms` or `1h 30m`";
    match e {
        E::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("a unit is needed after `{value}`, e.g. `{value}s` or `{value}ms`")
        }
        E::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}` (units: ns, us, ms, s, m, h, d, w, M, y and their long forms)")
        }
        E::NumberOverflow => "the duration is too large".into(),
        E::Empty => "a duration must not be empty".into(),
        _ => FORM.into(),
    }
}

struct HumanSize(ByteSize);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `64MiB` or a number of bytes")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(HumanSize(ByteSize(n)))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .map(|n| HumanSize(ByteSize(n)))
                    .map_err(|_| E::custom(format!("invalid size `{n}`: a size must not be negative")))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                // bytesize's own messages are capitalised and truncate the unit.
                ByteSize::from_str(s.trim())
                    .map(HumanSize)
                    .map_err(|_| E::custom(format!("invalid size `{s}`: expected a number and a unit such as `64MiB`, `512KiB` or `1GB`")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "duration")]
        d: Duration,
        #[serde(default, deserialize_with = "option_duration")]
        o: Option<Duration>,
        #[serde(default, deserialize_with = "option_duration_list")]
        l: Option<Vec<Duration>>,
        #[serde(default, deserialize_with = "byte_size")]
        s: ByteSize,
    }

    fn parse(text: &str) -> Result<T, String> {
        toml::from_str::<T>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn good_values() -> Result<(), String> {
        let t = parse("d = \"1m 30s\"\no = \"250ms\"\nl = [\"1s\", \"5s\"]\ns = \"64KiB\"")?;
        assert_eq!(t.d, Duration::from_secs(90));
        assert_eq!(t.o, Some(Duration::from_millis(250)));
        assert_eq!(t.l, Some(vec![Duration::from_secs(1), Duration::from_secs(5)]));
        assert_eq!(t.s, ByteSize::kib(64));
        assert_eq!(parse("s = 1024")?.s, ByteSize(1024));
        assert_eq!(parse("o = \"0s\"")?.o, Some(Duration::ZERO));
        Ok(())
    }

    #[test]
    fn bad_values_say_why() {
        assert_eq!(
            parse("d = \"5 parsecs\"").err().as_deref(),
            Some("invalid duration `5 parsecs`: unknown unit `parsecs` (units: ns, us, ms, s, m, h, d, w, M, y and their long forms)")
        );
        assert_eq!(
            parse("d = 5").err().as_deref(),
            Some("invalid type: integer `5`, expected a duration string such as `30s` or `1h 30m`")
        );
        assert_eq!(parse("l = [\"1s\", \"\"]").err().as_deref(), Some("a duration must not be empty, e.g. `30s`"));
        assert_eq!(parse("d = \"5\"").err().as_deref(), Some("invalid duration `5`: a unit is needed after `5`, e.g. `5s` or `5ms`"));
        assert_eq!(
            parse("d = \"ten seconds\"").err().as_deref(),
            Some("invalid duration `ten seconds`: write a number and a unit, e.g. `30s`, `250ms` or `1h 30m`")
        );
        assert_eq!(
            parse("s = \"12 parsecs\"").err().as_deref(),
            Some("invalid size `12 parsecs`: expected a number and a unit such as `64MiB`, `512KiB` or `1GB`")
        );
        assert_eq!(parse("s = -1").err().as_deref(), Some("invalid size `-1`: a size must not be negative"));
    }
}
