//! The `telemetry` block: what Caravan honours of it. Nomad's sinks
//! (statsd, statsite, Datadog, Circonus) are not there; a block that sets
//! one is reported as having no effect.

use serde_json::Value;

/// The keys of `telemetry` Caravan honours. `disable_hostname` and
/// `collection_interval` are met as they stand: no name carries the host,
/// and every figure is read when asked.
pub const HONOURED: &[&str] = &[
    "prometheus_metrics",
    "publish_node_metrics",
    "disable_hostname",
    "collection_interval",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// `/v1/metrics?format=prometheus` answers (Nomad: 415 otherwise).
    pub prometheus_metrics: bool,
    /// Host gauges (memory, CPUs, uptime) from the client.
    pub publish_node_metrics: bool,
}

impl Telemetry {
    /// Reads the block as the file gave it; a key of the wrong type is
    /// named in the error.
    pub fn apply(&mut self, block: &Value) -> Result<(), (String, String)> {
        for (key, slot) in [
            ("prometheus_metrics", &mut self.prometheus_metrics),
            ("publish_node_metrics", &mut self.publish_node_metrics),
        ] {
            match block.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(value)) => *slot = *value,
                Some(_) => {
                    return Err((format!("telemetry.{key}"), "must be a boolean".into()));
                }
            }
        }
        Ok(())
    }

    /// Whether the block sets anything Caravan does not honour.
    pub fn has_unhonoured_keys(block: &Value) -> bool {
        block
            .as_object()
            .is_some_and(|keys| keys.keys().any(|key| !HONOURED.contains(&key.as_str())))
    }
}
