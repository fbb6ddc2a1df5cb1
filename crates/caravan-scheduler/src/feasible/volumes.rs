//! Host volume feasibility (Nomad's `HostVolumeChecker`): a group's
//! `volume` blocks of type `host` against the node's `HostVolumes`.
//!
//! Host volumes are not part of the computed node class, so this check is
//! one of Nomad's "available" checks: it runs for every node, after the
//! class-cached checks, and never decides a class's eligibility.

use caravan_api_types::job::TaskGroup;
use caravan_api_types::node::Node;

pub const REASON_MISSING_HOST_VOLUMES: &str = "missing compatible host volumes";

/// One host volume a group asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolumeAsk {
    /// The name of the node's `host_volume`.
    pub source: String,
    pub read_only: bool,
    /// Sticky claims exist only for dynamic host volumes.
    pub sticky: bool,
}

/// The group's host volume asks (CSI volumes are checked elsewhere).
pub fn host_volume_asks(group: &TaskGroup) -> Vec<HostVolumeAsk> {
    group
        .volume_requests()
        .into_iter()
        .filter(|request| request.is_host())
        .map(|request| HostVolumeAsk {
            source: request.source,
            read_only: request.read_only,
            sticky: request.sticky,
        })
        .collect()
}

/// Whether `node` offers every volume in `asks`: each source must exist,
/// and a read-only host volume cannot serve a writable request.
pub fn has_host_volumes(node: &Node, asks: &[HostVolumeAsk]) -> bool {
    asks.iter().all(|ask| {
        let Some(volume) = node.host_volumes.get(&ask.source) else {
            return false;
        };
        // A static volume (no ID) has no claims to stick to.
        if volume.id.is_empty() && ask.sticky {
            return false;
        }
        ask.read_only || !volume.read_only
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use caravan_api_types::node::HostVolumeInfo;
    use serde_json::json;

    use super::*;

    fn node_with(volumes: &[(&str, bool)]) -> Node {
        let host_volumes: BTreeMap<String, HostVolumeInfo> = volumes
            .iter()
            .map(|(name, read_only)| {
                let info = HostVolumeInfo {
                    name: name.to_string(),
                    path: format!("/srv/{name}"),
                    read_only: *read_only,
                    id: String::new(),
                };
                (name.to_string(), info)
            })
            .collect();
        Node {
            host_volumes,
            ..Node::default()
        }
    }

    fn group(volumes: serde_json::Value) -> TaskGroup {
        TaskGroup {
            volumes: Some(volumes),
            ..TaskGroup::default()
        }
    }

    #[test]
    fn only_host_volumes_are_asked_for() {
        let asks = host_volume_asks(&group(json!({
            "a": {"Type": "host", "Source": "shared", "ReadOnly": true},
            "b": {"Type": "csi", "Source": "disk"},
        })));
        assert_eq!(
            asks,
            [HostVolumeAsk {
                source: "shared".into(),
                read_only: true,
                sticky: false
            }]
        );
    }

    #[test]
    fn the_node_must_offer_a_compatible_volume() {
        let writable = |source: &str| HostVolumeAsk {
            source: source.into(),
            read_only: false,
            sticky: false,
        };
        let reading = |source: &str| HostVolumeAsk {
            read_only: true,
            ..writable(source)
        };
        let node = node_with(&[("rw", false), ("ro", true)]);
        assert!(has_host_volumes(&node, &[]));
        assert!(has_host_volumes(&node, &[writable("rw"), reading("ro")]));
        assert!(!has_host_volumes(&node, &[writable("ro")]));
        assert!(!has_host_volumes(&node, &[writable("rw"), reading("gone")]));
        let sticky = HostVolumeAsk {
            sticky: true,
            ..writable("rw")
        };
        assert!(!has_host_volumes(&node, &[sticky]));
    }
}
