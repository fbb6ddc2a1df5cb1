//! Durations as configuration files write them.

use serde::{Deserialize, Deserializer};

/// A duration as Nomad's config decoder takes it: a Go duration string, or
/// an integer number of nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub i64);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Nanos(i64),
        }
        match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"10s\""))?
        {
            Raw::Nanos(nanos) => Ok(Self(nanos)),
            Raw::Text(text) => caravan_api_types::duration::parse_go_duration_nanos(&text)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}
