//! Task driver detection: which of raw_exec, exec and docker this node can
//! run, and their health, with Nomad's attribute names.

use std::collections::BTreeMap;

use caravan_api_types::node::DriverInfo;
use caravan_drivers::DriverSet;

/// What a driver check found (the driver's own fingerprint); `UpdateTime`
/// is stamped by [`to_info`] when the outcome changes.
pub type DriverState = caravan_drivers::Fingerprint;

/// The node's `Drivers` entry for a driver's state.
pub fn to_info(state: &DriverState, update_time: chrono::DateTime<chrono::Utc>) -> DriverInfo {
    DriverInfo {
        attributes: (!state.attributes.is_empty()).then(|| state.attributes.clone()),
        detected: state.detected,
        healthy: state.healthy,
        health_description: state.description.clone(),
        update_time: Some(update_time),
    }
}

/// Node events for drivers whose health changed between two checks, as
/// Nomad's client reports them (subsystem `Driver`, the new health
/// description as message, the driver's name in the details).
pub fn health_events(
    previous: &BTreeMap<String, DriverState>,
    fresh: &BTreeMap<String, DriverState>,
) -> Vec<caravan_api_types::node::NodeEvent> {
    fresh
        .iter()
        .filter(|(name, state)| {
            previous.get(*name).is_none_or(|before| {
                before.healthy != state.healthy || before.description != state.description
            })
        })
        .map(|(name, state)| {
            caravan_api_types::node::NodeEvent::new(
                caravan_api_types::node::SUBSYSTEM_DRIVER,
                &state.description,
            )
            .with_detail("driver", name)
        })
        .collect()
}

/// Every driver's state, by name: what the drivers the client runs tasks
/// with say of themselves, so a node never offers a driver it cannot run.
pub async fn detect_all(drivers: &DriverSet) -> BTreeMap<String, DriverState> {
    drivers.fingerprint_all().await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_change_becomes_a_driver_event() {
        let healthy = DriverState {
            detected: true,
            healthy: true,
            description: "Healthy".to_string(),
            attributes: BTreeMap::new(),
        };
        let before = BTreeMap::from([
            ("raw_exec".to_string(), healthy.clone()),
            ("docker".to_string(), healthy),
        ]);
        let mut after = before.clone();
        after.insert(
            "docker".to_string(),
            DriverState {
                detected: true,
                healthy: false,
                description: "Failed to connect to docker daemon: gone".to_string(),
                attributes: BTreeMap::new(),
            },
        );
        let events = health_events(&before, &after);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].subsystem, "Driver");
        assert_eq!(
            events[0].message,
            "Failed to connect to docker daemon: gone"
        );
        assert_eq!(events[0].details.as_ref().unwrap()["driver"], "docker");
        assert!(health_events(&after, &after).is_empty());
    }
}
