//! Wire types of the allocations API page (`/v1/allocations`,
//! `/v1/allocation/:id`): an allocation is one task group placed on one
//! node. Emitted with every empty field left out (Nomad's whole-struct
//! omitempty); its list stub emits every field.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::eval::{is_default, AllocMetric};
use crate::job::{Job, NetworkResource, TaskLifecycle};
use crate::time::optional_rfc3339;

pub const ALLOC_DESIRED_RUN: &str = "run";
pub const ALLOC_DESIRED_STOP: &str = "stop";
pub const ALLOC_DESIRED_EVICT: &str = "evict";

pub const ALLOC_CLIENT_PENDING: &str = "pending";
pub const ALLOC_CLIENT_RUNNING: &str = "running";
pub const ALLOC_CLIENT_COMPLETE: &str = "complete";
pub const ALLOC_CLIENT_FAILED: &str = "failed";
pub const ALLOC_CLIENT_LOST: &str = "lost";
pub const ALLOC_CLIENT_UNKNOWN: &str = "unknown";

pub const TASK_STATE_PENDING: &str = "pending";
pub const TASK_STATE_RUNNING: &str = "running";
pub const TASK_STATE_DEAD: &str = "dead";

/// CPU given to one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedCpu {
    pub cpu_shares: i64,
    pub reserved_cores: Option<Vec<u16>>,
}

/// Memory given to one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AllocatedMemory {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: i64,
}

/// A device instance given to a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedDevice {
    pub vendor: String,
    #[serde(rename = "Type")]
    pub device_type: String,
    pub name: String,
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Option<Vec<String>>,
}

/// What one task of an allocation was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedTaskResources {
    pub cpu: AllocatedCpu,
    pub memory: AllocatedMemory,
    pub networks: Option<Vec<NetworkResource>>,
    pub devices: Option<Vec<AllocatedDevice>>,
}

/// A port given to an allocation. Whole-struct omitempty, as Nomad.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedPortMapping {
    #[serde(skip_serializing_if = "is_default")]
    pub label: String,
    #[serde(skip_serializing_if = "is_default")]
    pub value: i32,
    #[serde(skip_serializing_if = "is_default")]
    pub to: i32,
    #[serde(rename = "HostIP", skip_serializing_if = "is_default")]
    pub host_ip: String,
    #[serde(skip_serializing_if = "is_default")]
    pub ignore_collision: bool,
}

/// What the whole group shares: its networks, disk and ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedSharedResources {
    pub networks: Option<Vec<NetworkResource>>,
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
    pub ports: Option<Vec<AllocatedPortMapping>>,
}

/// Everything an allocation was given on its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocatedResources {
    pub tasks: BTreeMap<String, AllocatedTaskResources>,
    pub task_lifecycles: BTreeMap<String, Option<TaskLifecycle>>,
    pub shared: AllocatedSharedResources,
}

impl AllocatedResources {
    /// The CPU (MHz), memory (MB) and disk (MB) the allocation holds.
    pub fn totals(&self) -> (i64, i64, i64) {
        let cpu = self.tasks.values().map(|task| task.cpu.cpu_shares).sum();
        let memory = self.tasks.values().map(|task| task.memory.memory_mb).sum();
        (cpu, memory, self.shared.disk_mb)
    }
}

/// The scheduler's instructions to the client about an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DesiredTransition {
    pub migrate: Option<bool>,
    pub reschedule: Option<bool>,
    pub force_reschedule: Option<bool>,
    pub no_shutdown_delay: Option<bool>,
    pub migrate_disable_placement: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleEvent {
    pub reschedule_time: i64,
    #[serde(rename = "PrevAllocID")]
    pub prev_alloc_id: String,
    #[serde(rename = "PrevNodeID")]
    pub prev_node_id: String,
    pub delay: i64,
}

/// The reschedules that led to an allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RescheduleTracker {
    pub events: Option<Vec<RescheduleEvent>>,
    pub last_reschedule: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocDeploymentStatus {
    pub healthy: Option<bool>,
    #[serde(with = "optional_rfc3339")]
    pub timestamp: Option<DateTime<Utc>>,
    pub canary: bool,
    pub modify_index: u64,
}

/// One thing that happened to a task (`Received`, `Started`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskEvent {
    #[serde(rename = "Type")]
    pub event_type: String,
    pub time: i64,
    pub message: String,
    pub display_message: String,
    pub details: BTreeMap<String, String>,
    pub fails_task: bool,
    pub restart_reason: String,
    pub setup_error: String,
    pub driver_error: String,
    pub exit_code: i64,
    pub signal: i64,
    pub kill_timeout: i64,
    pub kill_error: String,
    pub kill_reason: String,
    pub start_delay: i64,
    pub download_error: String,
    pub validation_error: String,
    pub disk_limit: i64,
    pub failed_sibling: String,
    pub vault_error: String,
    pub task_signal_reason: String,
    pub task_signal: String,
    pub driver_message: String,
    pub generic_source: String,
}

/// A task's state on its client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskState {
    /// `pending`, `running` or `dead`.
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    #[serde(with = "optional_rfc3339")]
    pub last_restart: Option<DateTime<Utc>>,
    #[serde(with = "optional_rfc3339")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "optional_rfc3339")]
    pub finished_at: Option<DateTime<Utc>>,
    pub events: Option<Vec<TaskEvent>>,
    pub paused: String,
}

/// One task group placed on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Allocation {
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    #[serde(rename = "EvalID", skip_serializing_if = "is_default")]
    pub eval_id: String,
    /// `<job>.<group>[<index>]`.
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(rename = "NodeID", skip_serializing_if = "is_default")]
    pub node_id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub node_name: String,
    #[serde(rename = "JobID", skip_serializing_if = "is_default")]
    pub job_id: String,
    /// The job as it was when the allocation was placed (shared between
    /// the allocations of one job version, never copied per allocation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Arc<Job>>,
    #[serde(skip_serializing_if = "is_default")]
    pub task_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<AllocatedResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<AllocMetric>,
    #[serde(skip_serializing_if = "is_default")]
    pub desired_status: String,
    #[serde(skip_serializing_if = "is_default")]
    pub desired_description: String,
    #[serde(skip_serializing_if = "is_default")]
    pub desired_transition: DesiredTransition,
    #[serde(skip_serializing_if = "is_default")]
    pub client_status: String,
    #[serde(skip_serializing_if = "is_default")]
    pub client_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_states: Option<BTreeMap<String, TaskState>>,
    #[serde(skip_serializing_if = "is_default")]
    pub previous_allocation: String,
    #[serde(skip_serializing_if = "is_default")]
    pub next_allocation: String,
    #[serde(rename = "DeploymentID", skip_serializing_if = "is_default")]
    pub deployment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reschedule_tracker: Option<RescheduleTracker>,
    #[serde(rename = "FollowupEvalID", skip_serializing_if = "is_default")]
    pub followup_eval_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempted_allocations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_default")]
    pub preempted_by_allocation: String,
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub alloc_modify_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub create_time: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub modify_time: i64,
}

impl Allocation {
    /// The client is done with it: complete, failed or lost.
    pub fn client_terminal(&self) -> bool {
        matches!(
            self.client_status.as_str(),
            ALLOC_CLIENT_COMPLETE | ALLOC_CLIENT_FAILED | ALLOC_CLIENT_LOST
        )
    }

    /// The servers want it gone: stop or evict.
    pub fn server_terminal(&self) -> bool {
        matches!(
            self.desired_status.as_str(),
            ALLOC_DESIRED_STOP | ALLOC_DESIRED_EVICT
        )
    }

    /// Either side is done with it; it holds no resources.
    pub fn terminal(&self) -> bool {
        self.client_terminal() || self.server_terminal()
    }

    /// The group index from the name (`web.web[3]` → 3).
    pub fn index(&self) -> Option<u64> {
        let open = self.name.rfind('[')?;
        self.name[open + 1..].strip_suffix(']')?.parse().ok()
    }

    /// The list stub; `resources` and `task_states` as the list's query
    /// parameters ask.
    pub fn stub(&self, resources: bool, task_states: bool) -> AllocListStub {
        let job = self.job.as_deref();
        AllocListStub {
            id: self.id.clone(),
            eval_id: self.eval_id.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            node_id: self.node_id.clone(),
            node_name: self.node_name.clone(),
            job_id: self.job_id.clone(),
            job_type: job.map(|job| job.job_type.clone()).unwrap_or_default(),
            job_version: job.map_or(0, |job| job.version),
            task_group: self.task_group.clone(),
            allocated_resources: if resources {
                self.allocated_resources.clone()
            } else {
                None
            },
            desired_status: self.desired_status.clone(),
            desired_description: self.desired_description.clone(),
            client_status: self.client_status.clone(),
            client_description: self.client_description.clone(),
            desired_transition: self.desired_transition.clone(),
            task_states: if task_states {
                self.task_states.clone()
            } else {
                None
            },
            deployment_status: self.deployment_status.clone(),
            followup_eval_id: self.followup_eval_id.clone(),
            next_allocation: self.next_allocation.clone(),
            reschedule_tracker: self.reschedule_tracker.clone(),
            preempted_allocations: self.preempted_allocations.clone(),
            preempted_by_allocation: self.preempted_by_allocation.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            create_time: self.create_time,
            modify_time: self.modify_time,
        }
    }
}

/// An allocation in lists: every field emitted (`AllocatedResources` only
/// with `?resources=true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_type: String,
    pub job_version: u64,
    pub task_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<AllocatedResources>,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub desired_transition: DesiredTransition,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    pub next_allocation: String,
    pub reschedule_tracker: Option<RescheduleTracker>,
    pub preempted_allocations: Option<Vec<String>>,
    pub preempted_by_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Evaluation;

    /// jobs-api.md §0.6: evaluations and allocations leave out every empty
    /// field; their stubs emit them all.
    #[test]
    fn evaluations_and_allocations_drop_empty_fields_and_stubs_do_not() {
        let eval = Evaluation {
            id: "e".into(),
            status: "pending".into(),
            priority: 50,
            ..Evaluation::default()
        };
        assert_eq!(
            serde_json::to_string(&eval).unwrap(),
            r#"{"ID":"e","Priority":50,"Status":"pending"}"#
        );
        let stub = serde_json::to_value(eval.stub()).unwrap();
        assert_eq!(stub["WaitUntil"], serde_json::Value::Null);
        assert_eq!(stub["NodeID"], "");
        let alloc = Allocation {
            id: "a".into(),
            name: "web.web[3]".into(),
            client_status: ALLOC_CLIENT_RUNNING.into(),
            ..Allocation::default()
        };
        assert_eq!(
            serde_json::to_string(&alloc).unwrap(),
            r#"{"ID":"a","Name":"web.web[3]","ClientStatus":"running"}"#
        );
        assert_eq!(alloc.index(), Some(3));
        let stub = serde_json::to_value(alloc.stub(false, true)).unwrap();
        assert!(stub.get("AllocatedResources").is_none());
        assert_eq!(stub["DesiredStatus"], "");
        assert_eq!(stub["TaskStates"], serde_json::Value::Null);
    }
}
