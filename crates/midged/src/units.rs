//! Humane durations ("30s", "1h30m", "2d") and sizes ("64 KiB", "16MiB",
//! or a plain number of bytes) for the configuration file.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Parses a duration written as one or more `<number><unit>` parts, such as
/// `500ms`, `30s`, `5m`, `1h30m`, `2d` or `1w`. Units: `ms`, `s`, `m`, `h`,
/// `d`, `w`. Spaces between the parts are allowed.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration (write for example \"30s\", \"5m\", \"1h\", \"2d\")".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let after = after.trim_start();
        if digits.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: expected a number before {after:?}"
            ));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after_unit) = after.split_at(unit_end);
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: {digits} is too large"))?;
        let unit_secs: u64 = match unit {
            "ms" => {
                total = total.saturating_add(Duration::from_millis(value));
                rest = after_unit.trim_start();
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "" => {
                return Err(format!(
                "invalid duration {text:?}: missing unit after {digits} (use ms, s, m, h, d or w)"
            ))
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h, d or w)"
                ))
            }
        };
        let secs = value
            .checked_mul(unit_secs)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        total = total.saturating_add(Duration::from_secs(secs));
        rest = after_unit.trim_start();
    }
    Ok(total)
}

/// Parses a size: a plain number of bytes, or a number followed by `B`,
/// `KiB`, `MiB`, `GiB` (powers of 1024) or `kB`, `MB`, `GB` (powers of
/// 1000), with or without a space.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number of bytes, or one with a unit such as \"64KiB\" or \"16MiB\""
        ));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: too large"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, kB, MB or GB)"
            ))
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// A duration from the configuration file (a string such as `"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumaneDuration(pub(crate) Duration);

impl<'de> serde::Deserialize<'de> for HumaneDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumaneDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\", \"1h\" or \"2d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(HumaneDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A session expiry: a duration, or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry(pub(crate) Option<Duration>);

impl<'de> serde::Deserialize<'de> for Expiry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Expiry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"never\" or a duration such as \"1h\" or \"2d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim() == "never" {
                    Ok(Expiry(None))
                } else {
                    parse_duration(v)
                        .map(|d| Expiry(Some(d)))
                        .map_err(E::custom)
                }
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A size in bytes from the configuration file: an integer, or a string
/// with a unit (`"16MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) usize);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string such as \"64KiB\" or \"16MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {v}: must be 0 or more")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {v}: too large")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let bytes = parse_size(v).map_err(E::custom)?;
                usize::try_from(bytes)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {v:?}: too large")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3 h"), Ok(Duration::from_secs(3 * 3600)));
    }

    #[test]
    fn bad_durations_say_why() {
        let err = parse_duration("5x").unwrap_err();
        assert!(err.contains("unknown unit \"x\""), "{err}");
        let err = parse_duration("30").unwrap_err();
        assert!(err.contains("missing unit"), "{err}");
        let err = parse_duration("h").unwrap_err();
        assert!(err.contains("expected a number"), "{err}");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615w").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("16 MiB"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2kB"), Ok(2000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        let err = parse_size("12 parsecs").unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }
}
