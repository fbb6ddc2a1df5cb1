//! Request bodies decoded the way Go's `encoding/json` decodes them: field
//! names match case-insensitively (`{"schedulerAlgorithm": ..}` sets
//! `SchedulerAlgorithm`), unknown fields are ignored, missing ones keep
//! their defaults. Scripts written against Nomad rely on the first.
//!
//! Two more things Go does and serde would not: a body that is not a JSON
//! object where a struct is expected (`[]`, `3`, `"x"`) is refused, as
//! `json: cannot unmarshal array into Go value of type ...`, rather than
//! filled in by position; and errors quote at most [`QUOTE_LIMIT`]
//! characters of the input, so a huge bad value is not echoed back.

use std::fmt::{self, Display};

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{DeserializeOwned, Expected, IntoDeserializer, Unexpected, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// How many characters of a bad value an error quotes.
pub const QUOTE_LIMIT: usize = 64;

/// The longest error message, in characters, for messages whose parts
/// are not known (a field's own parser worded it).
const MESSAGE_LIMIT: usize = 256;

/// Why a body could not be decoded. Its text is always short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// `text` cut to `limit` characters, marked with `...` if it was cut.
fn clip(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}...", &text[..end]).into(),
        None => text.into(),
    }
}

/// An `Unexpected` as serde words it, with strings clipped.
struct Shown<'a>(Unexpected<'a>);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Str(text) => write!(f, "string {:?}", clip(text, QUOTE_LIMIT)),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Other(text) => f.write_str(&clip(text, QUOTE_LIMIT)),
            other => write!(f, "{other}"),
        }
    }
}

/// serde's wording of a list of names: `` `a` ``, `` `a` or `b` ``,
/// `` one of `a`, `b`, `c` ``.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_string(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        many => format!(
            "one of {}",
            many.iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl serde::de::Error for DecodeError {
    fn custom<T: Display>(message: T) -> Self {
        Self(clip(&message.to_string(), MESSAGE_LIMIT).into_owned())
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        Self(format!(
            "invalid type: {}, expected {expected}",
            Shown(unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        Self(format!(
            "invalid value: {}, expected {expected}",
            Shown(unexpected)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self(format!(
            "unknown variant `{}`, expected {}",
            clip(variant, QUOTE_LIMIT),
            one_of(expected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self(format!(
            "unknown field `{}`, expected {}",
            clip(field, QUOTE_LIMIT),
            one_of(expected)
        ))
    }
}

/// Decodes JSON into `T`, matching object keys to `T`'s field names
/// without regard to ASCII case, at every level.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| DecodeError(clip(&error.to_string(), MESSAGE_LIMIT).into_owned()))?;
    T::deserialize(CaseInsensitive { value, top: true })
}

/// A JSON value that renames keys to the field names its target expects.
/// `top` marks the body itself, as opposed to a value inside it.
struct CaseInsensitive {
    value: Value,
    top: bool,
}

fn nested(value: Value) -> CaseInsensitive {
    CaseInsensitive { value, top: false }
}

impl<'de> IntoDeserializer<'de, DecodeError> for CaseInsensitive {
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
) -> MapDeserializer<'static, impl Iterator<Item = (String, CaseInsensitive)>, DecodeError> {
    MapDeserializer::new(map.into_iter().map(|(key, value)| (key, nested(value))))
}

fn wrap_seq(
    items: Vec<Value>,
) -> SeqDeserializer<impl Iterator<Item = CaseInsensitive>, DecodeError> {
    SeqDeserializer::new(items.into_iter().map(nested))
}

/// Go's name for the kind of a JSON value, as in its unmarshal errors.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(flag) => Unexpected::Bool(*flag),
        Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(n), _, _) => Unexpected::Unsigned(n),
            (_, Some(n), _) => Unexpected::Signed(n),
            (_, _, Some(n)) => Unexpected::Float(n),
            _ => Unexpected::Other("number"),
        },
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for CaseInsensitive {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(flag),
            Value::Number(number) => {
                if let Some(n) = number.as_u64() {
                    visitor.visit_u64(n)
                } else if let Some(n) = number.as_i64() {
                    visitor.visit_i64(n)
                } else if let Some(n) = number.as_f64() {
                    visitor.visit_f64(n)
                } else {
                    Err(serde::de::Error::custom("invalid number"))
                }
            }
            Value::String(text) => visitor.visit_string(text),
            Value::Array(items) => visitor.visit_seq(wrap_seq(items)),
            Value::Object(map) => visitor.visit_map(wrap_map(map)),
        }
    }

    /// Only an object decodes into a struct, as in Go: not an array by
    /// position, nor a scalar. A `null` inside the body leaves the field
    /// at its zero value, as Go leaves it untouched; the body itself
    /// being `null` is refused.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => visitor.visit_map(wrap_map(canonical_keys(map, fields))),
            Value::Null if !self.top => visitor.visit_map(wrap_map(Map::new())),
            other => Err(DecodeError(format!(
                "json: cannot unmarshal {} into Go value of type structs.{name}",
                go_kind(&other)
            ))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(wrap_map(map)))
            }
            other => Err(serde::de::Error::invalid_type(
                unexpected(&other),
                &"a string or a map of one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod fuzz;

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

    #[test]
    fn only_an_object_decodes_into_a_struct() {
        for (body, kind) in [
            ("[]", "array"),
            ("[\"spread\", {}, true]", "array"),
            ("3", "number"),
            ("\"spread\"", "string"),
            ("true", "bool"),
            ("null", "null"),
        ] {
            let error = from_slice::<SchedulerConfiguration>(body.as_bytes()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "json: cannot unmarshal {kind} into Go value of type structs.SchedulerConfiguration"
                ),
                "{body}"
            );
        }
        // Inside the body too.
        let error =
            from_slice::<SchedulerConfiguration>(br#"{"PreemptionConfig": [true]}"#).unwrap_err();
        assert!(
            error.to_string().contains("cannot unmarshal array"),
            "{error}"
        );
        // A null field is Go's zero value.
        let config: SchedulerConfiguration =
            from_slice(br#"{"PreemptionConfig": null, "SchedulerAlgorithm": "spread"}"#).unwrap();
        assert_eq!(config.scheduler_algorithm, "spread");
        assert!(!config.preemption_config.system_scheduler_enabled);
    }

    #[test]
    fn errors_quote_only_a_prefix_of_the_input() {
        let huge = "x".repeat(1 << 20);
        for body in [
            format!(r#"{{"PauseEvalBroker": "{huge}"}}"#),
            format!(r#"{{"NodeLimitForFeasibilityChecks": "{huge}"}}"#),
            format!(r#"{{"SchedulerAlgorithm": ["{huge}"]}}"#),
            format!(r#"{{"{huge}": 1, "MemoryOversubscriptionEnabled": "{huge}"}}"#),
        ] {
            let error = from_slice::<SchedulerConfiguration>(body.as_bytes()).unwrap_err();
            let text = error.to_string();
            assert!(text.len() < 300, "{} bytes: {}", text.len(), &text[..300]);
        }
        let text = from_slice::<SchedulerConfiguration>(
            format!(r#"{{"PauseEvalBroker": "{huge}"}}"#).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            text,
            format!(
                "invalid type: string \"{}...\", expected a boolean",
                "x".repeat(64)
            )
        );
        // Parsers of their own (durations, times) word their errors; those
        // are cut too.
        let error = from_slice::<caravan_api_types::operator::AutopilotConfiguration>(
            format!(r#"{{"LastContactThreshold": "{huge}"}}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(
            error.to_string().len() < 300,
            "{}",
            &error.to_string()[..300]
        );
        assert!(error.to_string().ends_with("..."));
        let error = from_slice::<caravan_api_types::acl::AclToken>(
            format!(r#"{{"ExpirationTime": "{huge}"}}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(error.to_string().len() < 300, "{error}");
        // Multi-byte characters are cut on a character boundary.
        let error = from_slice::<SchedulerConfiguration>(
            format!(r#"{{"PauseEvalBroker": "{}"}}"#, "\u{e9}".repeat(1000)).as_bytes(),
        )
        .unwrap_err();
        assert!(error
            .to_string()
            .contains(&format!("{}...", "\u{e9}".repeat(64))));
    }
}
