//! Request bodies decoded the way Go's `encoding/json` decodes them: field
//! names match case-insensitively (`{"schedulerAlgorithm": ..}` sets
//! `SchedulerAlgorithm`), unknown fields are ignored, missing ones keep
//! their defaults. Scripts written against Nomad rely on the first.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// Decodes JSON into `T`, matching object keys to `T`'s field names
/// without regard to ASCII case, at every level.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    T::deserialize(CaseInsensitive(value))
}

/// A JSON value that renames keys to the field names its target expects.
struct CaseInsensitive(Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for CaseInsensitive {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Renames each key that is not a field name but equals one ignoring case.
fn canonical_keys(map: Map<String, Value>, fields: &'static [&'static str]) -> Map<String, Value> {
    map.into_iter()
        .map(|(key, value)| {
            if fields.contains(&key.as_str()) {
                return (key, value);
            }
            match fields.iter().find(|field| field.eq_ignore_ascii_case(&key)) {
                Some(field) => (field.to_string(), value),
                None => (key, value),
            }
        })
        .collect()
}

fn wrap_map(
    map: Map<String, Value>,
) -> MapDeserializer<'static, impl Iterator<Item = (String, CaseInsensitive)>, serde_json::Error> {
    MapDeserializer::new(
        map.into_iter()
            .map(|(key, value)| (key, CaseInsensitive(value))),
    )
}

impl<'de> Deserializer<'de> for CaseInsensitive {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(wrap_map(map)),
            Value::Array(items) => {
                visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(CaseInsensitive)))
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(wrap_map(canonical_keys(map, fields))),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(CaseInsensitive(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => {
                visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(CaseInsensitive)))
            }
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(wrap_map(map)),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_api_types::operator::SchedulerConfiguration;

    #[test]
    fn keys_match_fields_ignoring_case_at_every_level() {
        let body = br#"{"schedulerALGORITHM": "spread",
                        "preemptionconfig": {"batchschedulerenabled": true},
                        "Unknown": 1}"#;
        let config: SchedulerConfiguration = from_slice(body).unwrap();
        assert_eq!(config.scheduler_algorithm, "spread");
        assert!(config.preemption_config.batch_scheduler_enabled);
        assert!(!config.preemption_config.system_scheduler_enabled);
    }

    #[test]
    fn exact_names_win_and_types_are_still_checked() {
        let config: SchedulerConfiguration =
            from_slice(br#"{"SchedulerAlgorithm": "binpack"}"#).unwrap();
        assert_eq!(config.scheduler_algorithm, "binpack");
        assert!(from_slice::<SchedulerConfiguration>(br#"{"pauseevalbroker": "yes"}"#).is_err());
        assert!(from_slice::<SchedulerConfiguration>(b"{not json").is_err());
    }

    #[test]
    fn options_maps_and_lists_decode() {
        let drain: caravan_api_types::node::NodeUpdateDrainRequest = from_slice(
            br#"{"drainspec": {"deadline": 5, "ignoresystemjobs": true}, "markeligible": true,
                 "meta": {"Reason": "upgrade"}}"#,
        )
        .unwrap();
        let spec = drain.drain_spec.unwrap();
        assert_eq!(spec.deadline, 5);
        assert!(spec.ignore_system_jobs && drain.mark_eligible);
        // Map keys are data, not field names: they keep their case.
        assert_eq!(drain.meta.unwrap()["Reason"], "upgrade");
        let cancel: caravan_api_types::node::NodeUpdateDrainRequest =
            from_slice(br#"{"DrainSpec": null}"#).unwrap();
        assert!(cancel.drain_spec.is_none());
        let token: caravan_api_types::acl::AclToken = from_slice(
            br#"{"type": "client", "policies": ["a", "b"], "expirationttl": 60000000000}"#,
        )
        .unwrap();
        assert_eq!(token.policies, ["a", "b"]);
        assert_eq!(token.expiration_ttl, 60_000_000_000);
    }
}
