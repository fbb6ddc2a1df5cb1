//! Typed views of a group's `Volumes` and a task's `VolumeMounts`.
//!
//! Both stay `serde_json::Value` on the job, so whatever a client sent is
//! stored and returned unchanged; these views read the fields Caravan acts
//! on (placement, validation, the client's mounts). A field of the wrong
//! JSON type reads as its zero value rather than failing, as the rest of
//! the job is already decoded by then.

use serde_json::Value;

use super::group::TaskGroup;
use super::task::Task;

/// `type = "host"`: a path the client offers (`host_volume` in its config).
pub const VOLUME_TYPE_HOST: &str = "host";
/// `type = "csi"`: a volume of a CSI plugin.
pub const VOLUME_TYPE_CSI: &str = "csi";

/// One entry of a group's `Volumes` (Nomad's `VolumeRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The key the group's `Volumes` map has it under: what a task's
    /// `volume_mount` names.
    pub name: String,
    pub volume_type: String,
    pub source: String,
    pub read_only: bool,
    pub sticky: bool,
    pub per_alloc: bool,
    pub access_mode: String,
    pub attachment_mode: String,
    pub has_mount_options: bool,
}

/// One of a task's `VolumeMounts` (Nomad's `VolumeMount`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub destination: String,
    pub read_only: bool,
    pub propagation_mode: String,
    pub selinux_label: String,
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(value: &Value, key: &str) -> bool {
    value.get(key).and_then(Value::as_bool).unwrap_or(false)
}

impl VolumeRequest {
    fn of(name: &str, value: &Value) -> Self {
        Self {
            name: name.to_string(),
            volume_type: text(value, "Type"),
            source: text(value, "Source"),
            read_only: flag(value, "ReadOnly"),
            sticky: flag(value, "Sticky"),
            per_alloc: flag(value, "PerAlloc"),
            access_mode: text(value, "AccessMode"),
            attachment_mode: text(value, "AttachmentMode"),
            has_mount_options: value.get("MountOptions").is_some_and(|v| !v.is_null()),
        }
    }

    pub fn is_host(&self) -> bool {
        self.volume_type == VOLUME_TYPE_HOST
    }
}

impl VolumeMount {
    fn of(value: &Value) -> Self {
        Self {
            volume: text(value, "Volume"),
            destination: text(value, "Destination"),
            read_only: flag(value, "ReadOnly"),
            propagation_mode: text(value, "PropagationMode"),
            selinux_label: text(value, "SELinuxLabel"),
        }
    }
}

impl TaskGroup {
    /// The group's volumes in name order (a JSON object is a map in Nomad,
    /// so its order carries no meaning). Anything but an object has none.
    pub fn volume_requests(&self) -> Vec<VolumeRequest> {
        let Some(Value::Object(map)) = &self.volumes else {
            return Vec::new();
        };
        let mut requests: Vec<VolumeRequest> = map
            .iter()
            .map(|(name, value)| VolumeRequest::of(name, value))
            .collect();
        requests.sort_by(|a, b| a.name.cmp(&b.name));
        requests
    }

    /// The group's volume called `name` (the `Volumes` key).
    pub fn volume_request(&self, name: &str) -> Option<VolumeRequest> {
        match &self.volumes {
            Some(Value::Object(map)) => map.get(name).map(|value| VolumeRequest::of(name, value)),
            _ => None,
        }
    }
}

impl Task {
    /// The task's volume mounts in their order (`Volume Mount (0)` is the
    /// first). Anything but a list has none.
    pub fn volume_mount_list(&self) -> Vec<VolumeMount> {
        match &self.volume_mounts {
            Some(Value::Array(list)) => list.iter().map(VolumeMount::of).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn volumes_and_mounts_are_read_from_their_json() {
        let group = TaskGroup {
            volumes: Some(json!({
                "b": {"Name": "b", "Type": "csi", "Source": "vol", "AccessMode": "single-node-writer"},
                "a": {"Name": "a", "Type": "host", "Source": "shared", "ReadOnly": true,
                      "MountOptions": null},
            })),
            ..TaskGroup::default()
        };
        let requests = group.volume_requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].name, "a");
        assert!(requests[0].is_host() && requests[0].read_only);
        assert!(!requests[0].has_mount_options);
        assert_eq!(requests[1].access_mode, "single-node-writer");
        assert_eq!(group.volume_request("a"), Some(requests[0].clone()));
        assert_eq!(group.volume_request("c"), None);

        let task = Task {
            volume_mounts: Some(json!([
                {"Volume": "a", "Destination": "/data", "ReadOnly": null},
                {"Volume": 3},
            ])),
            ..Task::default()
        };
        let mounts = task.volume_mount_list();
        assert_eq!(mounts[0].destination, "/data");
        assert!(!mounts[0].read_only);
        assert_eq!(mounts[1].volume, "");
    }

    #[test]
    fn malformed_shapes_have_no_volumes() {
        let group = TaskGroup {
            volumes: Some(json!(["a"])),
            ..TaskGroup::default()
        };
        assert!(group.volume_requests().is_empty());
        let task = Task {
            volume_mounts: Some(json!({"Volume": "a"})),
            ..Task::default()
        };
        assert!(task.volume_mount_list().is_empty());
    }
}
