//! Go's `time.Duration` text format, both directions.
//!
//! Nomad parses query parameters (`wait`), agent configuration and autopilot
//! settings with Go's `time.ParseDuration`, and prints autopilot durations and
//! several stats with `Duration.String()`. Clients send and expect exactly
//! those forms, so both are reproduced here rather than approximated.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration \"{0}\"")]
pub struct DurationError(pub String);

const NANOS_PER: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string into signed nanoseconds.
///
/// Accepts what `time.ParseDuration` accepts: an optional sign, then one or
/// more `<decimal><unit>` pairs; a bare `0` is the only unit-less value.
pub fn parse_go_duration_nanos(text: &str) -> Result<i64, DurationError> {
    let err = || DurationError(text.to_string());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = NANOS_PER
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(err)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(err)?;
        let mut divisor: u128 = 1;
        for digit in fraction.bytes().take(30) {
            divisor *= 10;
            value += u128::from(digit - b'0') * scale / divisor;
        }
        total = total.checked_add(value).ok_or_else(err)?;
    }
    if total > i64::MAX as u128 {
        return Err(err());
    }
    let total = total as i64;
    Ok(if negative { -total } else { total })
}

/// Parses a Go duration that must not be negative.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(text)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError(text.to_string()))
}

/// Formats signed nanoseconds the way Go's `Duration.String()` does,
/// e.g. `0s`, `200ms`, `27.291304ms`, `1m30s`, `1h0m0s`.
pub fn format_go_duration_nanos(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude < 1_000_000_000 {
        let (unit, scale) = if magnitude < 1_000 {
            ("ns", 1)
        } else if magnitude < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", decimal(magnitude, scale));
    }
    let hours = magnitude / 3_600_000_000_000;
    let minutes = (magnitude / 60_000_000_000) % 60;
    let seconds = decimal(magnitude % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// Formats a non-negative duration like Go's `Duration.String()`.
pub fn format_go_duration(duration: Duration) -> String {
    format_go_duration_nanos(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

/// `value / scale` with the fraction printed without trailing zeros.
fn decimal(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Serde adapter for durations carried as Go duration strings (`"200ms"`),
/// as Nomad does for autopilot settings. Numbers are refused, as Nomad does.
pub mod as_go_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_go_duration_nanos(*nanos))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_go_duration_nanos(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_go_accepts() {
        assert_eq!(parse_go_duration_nanos("0"), Ok(0));
        assert_eq!(parse_go_duration_nanos("5s"), Ok(5_000_000_000));
        assert_eq!(parse_go_duration_nanos("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration_nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration_nanos("1h2m3s"), Ok(3_723_000_000_000));
        assert_eq!(parse_go_duration_nanos("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration_nanos("10us"), Ok(10_000));
        assert_eq!(parse_go_duration_nanos("10\u{b5}s"), Ok(10_000));
        assert_eq!(parse_go_duration_nanos(".5s"), Ok(500_000_000));
    }

    #[test]
    fn refuses_what_go_refuses() {
        for bad in ["", "5", "s", "1x", "1.2.3s", "-", "abc", "5 s", "."] {
            assert!(parse_go_duration_nanos(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration_nanos(0), "0s");
        assert_eq!(format_go_duration_nanos(200_000_000), "200ms");
        assert_eq!(format_go_duration_nanos(27_291_304), "27.291304ms");
        assert_eq!(format_go_duration_nanos(10_000_000_000), "10s");
        assert_eq!(format_go_duration_nanos(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration_nanos(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go_duration_nanos(1_500), "1.5\u{b5}s");
        assert_eq!(format_go_duration_nanos(17_795_689_370), "17.79568937s");
        assert_eq!(format_go_duration_nanos(-2_000_000_000), "-2s");
    }

    #[test]
    fn round_trips() {
        for nanos in [1, 999, 1_000_001, 59_999_999_999, 3_723_000_000_001] {
            let text = format_go_duration_nanos(nanos);
            assert_eq!(parse_go_duration_nanos(&text), Ok(nanos), "{text}");
        }
    }
}
