//! Timestamps as Nomad's JSON encoder writes them: RFC 3339 with nanoseconds
//! (trailing zeros trimmed, as Go's `RFC3339Nano` does) and `null` for the
//! zero time.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{de::Error, Deserialize, Deserializer, Serializer};

/// Formats a timestamp like Go's `time.RFC3339Nano` in UTC.
pub fn format_rfc3339_nano(time: &DateTime<Utc>) -> String {
    let text = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // chrono always prints nine fraction digits; Go drops trailing zeros
    // and the dot when nothing is left.
    let Some((head, tail)) = text.split_once('.') else {
        return text;
    };
    let digits = tail.trim_end_matches('Z').trim_end_matches('0');
    if digits.is_empty() {
        format!("{head}Z")
    } else {
        format!("{head}.{digits}Z")
    }
}

/// Formats a timestamp rounded down to whole seconds (`2017-03-06T22:07:51Z`).
pub fn format_rfc3339_seconds(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Serde adapter: `Option<DateTime<Utc>>` as an RFC 3339 string, `None` as `null`.
pub mod optional_rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_str(&format_rfc3339_nano(time)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        if text.starts_with("0001-01-01") {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(&text)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn trims_fraction_like_go() {
        let base = Utc.with_ymd_and_hms(2021, 3, 31, 12, 12, 20).unwrap();
        assert_eq!(format_rfc3339_nano(&base), "2021-03-31T12:12:20Z");
        let with_nanos = base + chrono::Duration::nanoseconds(213_412_000);
        assert_eq!(
            format_rfc3339_nano(&with_nanos),
            "2021-03-31T12:12:20.213412Z"
        );
        assert_eq!(format_rfc3339_seconds(&with_nanos), "2021-03-31T12:12:20Z");
    }
}
