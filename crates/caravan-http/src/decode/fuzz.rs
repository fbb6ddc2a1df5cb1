//! Property tests ("fuzzing") for the body decoder: arbitrary bytes and
//! arbitrary JSON values, decoded into every type a write route decodes
//! its body into, never panic; a failure is an `Err` whose text is short.
//!
//! 256 cases per property by default; `CARAVAN_FUZZ_CASES=N` raises it
//! (`bench/fuzz.sh` does).

use caravan_api_types::acl::{AclBootstrapRequest, AclPolicy, AclToken};
use caravan_api_types::node::{NodeUpdateDrainRequest, NodeUpdateEligibilityRequest};
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::from_slice;

fn config() -> ProptestConfig {
    let cases = std::env::var("CARAVAN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An error longer than this quotes too much of its input.
const SHORT: usize = 512;

fn decode_as<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(error) = from_slice::<T>(bytes) {
        let text = error.to_string();
        prop_assert!(
            text.len() <= SHORT,
            "{} bytes of error for {}: {}...",
            text.len(),
            std::any::type_name::<T>(),
            &text[..SHORT.min(text.len())]
        );
    }
    Ok(())
}

/// Decodes `bytes` as every write route's body type.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_as::<SchedulerConfiguration>(bytes)?;
    decode_as::<AutopilotConfiguration>(bytes)?;
    decode_as::<AclPolicy>(bytes)?;
    decode_as::<AclToken>(bytes)?;
    decode_as::<AclBootstrapRequest>(bytes)?;
    decode_as::<NodeUpdateDrainRequest>(bytes)?;
    decode_as::<NodeUpdateEligibilityRequest>(bytes)?;
    Ok(())
}

/// Field names of the body types, in assorted cases, so that generated
/// objects reach the fields' own decoders.
const FIELDS: &[&str] = &[
    "SchedulerAlgorithm",
    "schedulerALGORITHM",
    "PreemptionConfig",
    "preemptionconfig",
    "SystemSchedulerEnabled",
    "PauseEvalBroker",
    "NodeLimitForFeasibilityChecks",
    "CleanupDeadServers",
    "LastContactThreshold",
    "lastcontactthreshold",
    "ServerStabilizationTime",
    "MaxTrailingLogs",
    "Name",
    "Rules",
    "JobACL",
    "AccessorID",
    "SecretID",
    "Type",
    "Policies",
    "Roles",
    "ExpirationTime",
    "ExpirationTTL",
    "CreateTime",
    "BootstrapSecret",
    "DrainSpec",
    "Deadline",
    "IgnoreSystemJobs",
    "MarkEligible",
    "Meta",
    "Eligibility",
    "NodeEvent",
    "NodeID",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop_oneof![
            Just("10s"),
            Just("200ms"),
            Just("-1h"),
            Just("1.5x"),
            Just("2026-12-01T00:00:00Z"),
            Just("0001-01-01T00:00:00Z"),
            Just("spread"),
            Just("eligible"),
        ]
        .prop_map(Value::from),
        // A long value, as a client sending junk would.
        (0..4096usize).prop_map(|n| Value::String("x".repeat(n))),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 8, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(FIELDS).prop_map(str::to_string),
            1 => any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        decode_all(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn arbitrary_objects_never_panic(
        pairs in prop::collection::vec(
            (prop::sample::select(FIELDS).prop_map(str::to_string), json_value()),
            0..12,
        )
    ) {
        let object = Value::Object(pairs.into_iter().collect());
        decode_all(&serde_json::to_vec(&object).unwrap())?;
    }

    #[test]
    fn deep_nesting_never_panics(depth in 0..2000usize, open in prop_oneof![Just("["), Just("{\"Meta\":")]) {
        let close = if open == "[" { "]" } else { "}" };
        let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        decode_all(body.as_bytes())?;
    }
}
