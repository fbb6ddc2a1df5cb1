//! A task's host volume mounts: each `volume_mount` names a group
//! `volume`, whose `source` names one of this node's `host_volume`s.

use std::path::PathBuf;

use caravan_api_types::job::{Task, TaskGroup};
use caravan_api_types::node::Node;
use caravan_drivers::MountConfig;

/// The mounts the task's driver is given, in the task's order. A mount is
/// read-only when the mount, the group's volume or the host volume says
/// so. An error (a mount the node cannot serve) names the mount; after
/// placement it means the job or the node changed underneath.
pub fn task_mounts(
    group: &TaskGroup,
    task: &Task,
    node: &Node,
) -> Result<Vec<MountConfig>, String> {
    let mut mounts = Vec::new();
    for mount in task.volume_mount_list() {
        let Some(request) = group.volume_request(&mount.volume) else {
            return Err(format!(
                "volume_mount references undefined volume {:?}",
                mount.volume
            ));
        };
        if !request.is_host() {
            // CSI volumes are mounted by their plugin, which Caravan
            // does not run.
            return Err(format!(
                "volume {:?} has type {:?}: only host volumes can be mounted",
                request.name, request.volume_type
            ));
        }
        let Some(host) = node.host_volumes.get(&request.source) else {
            return Err(format!(
                "host volume {:?} (for volume {:?}) is not configured on this node",
                request.source, request.name
            ));
        };
        mounts.push(MountConfig {
            host_path: PathBuf::from(&host.path),
            task_path: mount.destination.clone(),
            read_only: mount.read_only || request.read_only || host.read_only,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use caravan_api_types::node::HostVolumeInfo;
    use serde_json::json;

    use super::*;

    fn node() -> Node {
        let mut node = Node::default();
        for (name, read_only) in [("shared", false), ("ro", true)] {
            node.host_volumes.insert(
                name.into(),
                HostVolumeInfo {
                    name: name.into(),
                    path: format!("/srv/{name}"),
                    read_only,
                    id: String::new(),
                },
            );
        }
        node
    }

    fn group() -> TaskGroup {
        TaskGroup {
            volumes: Some(json!({
                "data": {"Type": "host", "Source": "shared"},
                "frozen": {"Type": "host", "Source": "shared", "ReadOnly": true},
                "fixed": {"Type": "host", "Source": "ro", "ReadOnly": true},
                "gone": {"Type": "host", "Source": "elsewhere"},
                "disk": {"Type": "csi", "Source": "disk"},
            })),
            ..TaskGroup::default()
        }
    }

    fn task(mounts: serde_json::Value) -> Task {
        Task {
            volume_mounts: Some(mounts),
            ..Task::default()
        }
    }

    #[test]
    fn mounts_resolve_to_host_paths_and_read_only_is_any_of_three() {
        let t = task(json!([
            {"Volume": "data", "Destination": "/data"},
            {"Volume": "data", "Destination": "/data-ro", "ReadOnly": true},
            {"Volume": "frozen", "Destination": "/frozen"},
            {"Volume": "fixed", "Destination": "local/fixed"},
        ]));
        let mounts = task_mounts(&group(), &t, &node()).unwrap();
        let seen: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|m| {
                (
                    m.host_path.to_str().unwrap(),
                    m.task_path.as_str(),
                    m.read_only,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("/srv/shared", "/data", false),
                ("/srv/shared", "/data-ro", true),
                ("/srv/shared", "/frozen", true),
                ("/srv/ro", "local/fixed", true),
            ]
        );
        assert!(task_mounts(&group(), &Task::default(), &node())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_mount_the_node_cannot_serve_is_an_error() {
        for (volume, text) in [
            (
                "gone",
                "host volume \"elsewhere\" (for volume \"gone\") is not configured",
            ),
            ("nope", "undefined volume \"nope\""),
            ("disk", "only host volumes can be mounted"),
        ] {
            let t = task(json!([{"Volume": volume, "Destination": "/x"}]));
            let error = task_mounts(&group(), &t, &node()).unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }
}
