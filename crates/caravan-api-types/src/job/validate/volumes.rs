//! Group `volume` and task `volume_mount` validation, with Nomad's texts
//! (`VolumeRequest.Validate`, `VolumeMount.Validate` and the task's check
//! that every mount names a group volume).

use super::{multierror, nest};
use crate::job::group::TaskGroup;
use crate::job::task::Task;
use crate::job::volumes::{VolumeMount, VolumeRequest, VOLUME_TYPE_CSI, VOLUME_TYPE_HOST};
use crate::job::{JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM};

/// Nomad's host volume access modes ("" is unset); anything else is
/// refused on a host volume.
const HOST_ACCESS_SINGLE_NODE_READER: &str = "single-node-reader-only";
const HOST_ACCESS_MODES: [&str; 5] = [
    "",
    HOST_ACCESS_SINGLE_NODE_READER,
    "single-node-writer",
    "single-node-single-writer",
    "single-node-multi-writer",
];

/// Every group volume's problems, in name order, each under
/// `Task group volume validation for <name> failed: `.
pub(super) fn validate_group_volumes(job_type: &str, group: &TaskGroup) -> Vec<String> {
    let canaries = group.update.as_ref().map_or(0, |update| update.canary);
    let mut errors = Vec::new();
    for request in group.volume_requests() {
        let prefix = format!("Task group volume validation for {} failed: ", request.name);
        match volume_request_errors(job_type, group.count, canaries, &request) {
            // An unknown type is a single error in Nomad, not a list.
            Err(single) => errors.push(format!("{prefix}{single}")),
            Ok(list) => nest(&mut errors, prefix, list),
        }
    }
    errors
}

fn volume_request_errors(
    job_type: &str,
    count: i64,
    canaries: i64,
    request: &VolumeRequest,
) -> Result<Vec<String>, String> {
    let kind = request.volume_type.as_str();
    if kind != VOLUME_TYPE_HOST && kind != VOLUME_TYPE_CSI {
        return Err(format!("volume has unrecognized type {kind}"));
    }
    let mut errors = Vec::new();
    if request.source.is_empty() {
        errors.push("volume has an empty source".to_string());
    }
    if request.per_alloc {
        if job_type == JOB_TYPE_SYSTEM || job_type == JOB_TYPE_SYSBATCH {
            errors.push("volume cannot be per_alloc for system or sysbatch jobs".into());
        }
        if canaries > 0 {
            errors.push("volume cannot be per_alloc when canaries are in use".into());
        }
        if request.sticky {
            errors.push("volume cannot be per_alloc and sticky at the same time".into());
        }
    }
    let access = request.access_mode.as_str();
    if kind == VOLUME_TYPE_HOST {
        if request.has_mount_options {
            errors.push("host volumes cannot have mount options".into());
        }
        if access == HOST_ACCESS_SINGLE_NODE_READER && !request.read_only {
            errors.push(format!("{access} volumes must be read-only"));
        } else if !HOST_ACCESS_MODES.contains(&access) {
            errors.push(format!(
                "host volumes cannot be mounted with {access} access mode"
            ));
        }
        return Ok(errors);
    }
    csi_errors(count, request, &mut errors);
    Ok(errors)
}

/// The CSI part of Nomad's `VolumeRequest.Validate`.
fn csi_errors(count: i64, request: &VolumeRequest, errors: &mut Vec<String>) {
    match request.attachment_mode.as_str() {
        "" => errors.push("CSI volumes must have an attachment mode".into()),
        "block-device" if request.has_mount_options => {
            errors.push("block devices cannot have mount options".into())
        }
        _ => {}
    }
    let access = request.access_mode.as_str();
    let shared = count > 1 && !request.per_alloc;
    match access {
        "" => errors.push("CSI volumes must have an access mode".into()),
        "single-node-reader-only" => {
            if !request.read_only {
                errors.push(format!("{access} volumes must be read-only"));
            }
            if shared {
                errors.push(format!(
                    "volume with {access} access mode allows only one reader"
                ));
            }
        }
        "single-node-writer" if shared => errors.push(format!(
            "volume with {access} access mode allows only one reader or writer"
        )),
        "multi-node-reader-only" if !request.read_only => {
            errors.push(format!("{access} volumes must be read-only"))
        }
        "multi-node-single-writer" if !request.read_only && shared => errors.push(format!(
            "volume with {access} access mode allows only one writer"
        )),
        _ => {}
    }
}

/// A task's `volume_mount` problems: an undefined volume, an empty name,
/// an unknown propagation mode or SELinux label.
pub(super) fn validate_volume_mounts(group: &TaskGroup, task: &Task) -> Vec<String> {
    let mut errors = Vec::new();
    for (index, mount) in task.volume_mount_list().iter().enumerate() {
        if group.volume_request(&mount.volume).is_none() {
            errors.push(format!(
                "Volume Mount ({index}) references undefined volume {}",
                mount.volume
            ));
        }
        let inner = volume_mount_errors(mount);
        if !inner.is_empty() {
            errors.push(format!(
                "Volume Mount ({index}) is invalid: \"{}\"",
                multierror(&inner)
            ));
        }
    }
    errors
}

fn volume_mount_errors(mount: &VolumeMount) -> Vec<String> {
    let mut errors = Vec::new();
    if mount.volume.is_empty() {
        errors.push("volume mount references an empty volume".to_string());
    }
    if !["", "private", "host-to-task", "bidirectional"].contains(&mount.propagation_mode.as_str())
    {
        errors.push(format!(
            "volume mount has an invalid propagation mode: {:?}",
            mount.propagation_mode
        ));
    }
    if !["", "z", "Z"].contains(&mount.selinux_label.as_str()) {
        errors.push(format!(
            "volume mount has an invalid SELinux label: \"{}\"",
            mount.selinux_label
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn group(volumes: serde_json::Value) -> TaskGroup {
        TaskGroup {
            name: "g".into(),
            volumes: Some(volumes),
            ..TaskGroup::default()
        }
    }

    #[test]
    fn an_empty_source_and_an_unknown_type_are_refused() {
        let g = group(json!({
            "a": {"Type": "host", "Source": ""},
            "b": {"Type": "nfs", "Source": "x"},
            "c": {"Type": "host", "Source": "ok"},
        }));
        assert_eq!(
            validate_group_volumes("service", &g),
            [
                "Task group volume validation for a failed: 1 error occurred:\n\t* volume has an empty source\n\n",
                "Task group volume validation for b failed: volume has unrecognized type nfs",
            ]
        );
    }

    #[test]
    fn host_volume_modes_are_checked() {
        let g = group(json!({
            "a": {"Type": "host", "Source": "s", "AccessMode": "single-node-reader-only"},
            "b": {"Type": "host", "Source": "s", "AccessMode": "multi-node-reader-only",
                  "MountOptions": {"FSType": "ext4"}},
        }));
        let errors = validate_group_volumes("service", &g);
        assert!(errors[0].contains("single-node-reader-only volumes must be read-only"));
        assert!(errors[1].contains("host volumes cannot have mount options"));
        assert!(errors[1].contains("cannot be mounted with multi-node-reader-only access mode"));
    }

    #[test]
    fn a_mount_must_name_a_group_volume() {
        let g = group(json!({"data": {"Type": "host", "Source": "s"}}));
        let task = Task {
            name: "t".into(),
            volume_mounts: Some(json!([
                {"Volume": "data", "Destination": "/data"},
                {"Volume": "nope", "Destination": "/x", "PropagationMode": "odd"},
            ])),
            ..Task::default()
        };
        assert_eq!(
            validate_volume_mounts(&g, &task),
            [
                "Volume Mount (1) references undefined volume nope".to_string(),
                "Volume Mount (1) is invalid: \"1 error occurred:\n\t* volume mount has an invalid propagation mode: \"odd\"\n\n\"".to_string(),
            ]
        );
    }
}
