//! A task group and its policies, as the server stores and emits them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::{Affinity, Constraint, NetworkResource, Spread, Task};

pub const SECOND: i64 = 1_000_000_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

/// How a group's allocations are replaced on a job update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateStrategy {
    pub stagger: i64,
    pub max_parallel: i64,
    pub health_check: String,
    pub min_healthy_time: i64,
    pub healthy_deadline: i64,
    pub progress_deadline: i64,
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub canary: i64,
}

impl UpdateStrategy {
    /// Nomad's `DefaultUpdateStrategy`, a service or system group's update
    /// block when none is given.
    pub fn default_group() -> Self {
        Self {
            stagger: 30 * SECOND,
            max_parallel: 1,
            health_check: "checks".into(),
            min_healthy_time: 10 * SECOND,
            healthy_deadline: 5 * MINUTE,
            progress_deadline: 10 * MINUTE,
            auto_revert: false,
            auto_promote: false,
            canary: 0,
        }
    }

    /// A rolling update is configured (`MaxParallel` > 0).
    pub fn rolling(&self) -> bool {
        self.max_parallel > 0
    }
}

/// How a group's allocations move off a draining node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MigrateStrategy {
    pub max_parallel: i64,
    pub health_check: String,
    pub min_healthy_time: i64,
    pub healthy_deadline: i64,
}

impl Default for MigrateStrategy {
    fn default() -> Self {
        Self {
            max_parallel: 1,
            health_check: "checks".into(),
            min_healthy_time: 10 * SECOND,
            healthy_deadline: 5 * MINUTE,
        }
    }
}

/// How the client restarts a task that exits, before the servers are told
/// it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub attempts: i64,
    pub interval: i64,
    pub delay: i64,
    /// `fail` or `delay`.
    pub mode: String,
    pub render_templates: bool,
}

impl RestartPolicy {
    /// Service and system groups: 2 attempts in 30 minutes, 15 s apart.
    pub fn default_service() -> Self {
        Self {
            attempts: 2,
            interval: 30 * MINUTE,
            delay: 15 * SECOND,
            mode: "fail".into(),
            render_templates: false,
        }
    }

    /// Batch and sysbatch groups: 3 attempts a day, 15 s apart.
    pub fn default_batch() -> Self {
        Self {
            attempts: 3,
            interval: 24 * HOUR,
            delay: 15 * SECOND,
            mode: "fail".into(),
            render_templates: false,
        }
    }
}

/// How the servers replace a failed allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReschedulePolicy {
    pub attempts: i64,
    pub interval: i64,
    pub delay: i64,
    /// `constant`, `exponential` or `fibonacci`.
    pub delay_function: String,
    pub max_delay: i64,
    pub unlimited: bool,
}

impl ReschedulePolicy {
    pub fn default_service() -> Self {
        Self {
            attempts: 0,
            interval: 0,
            delay: 30 * SECOND,
            delay_function: "exponential".into(),
            max_delay: HOUR,
            unlimited: true,
        }
    }

    pub fn default_batch() -> Self {
        Self {
            attempts: 1,
            interval: 24 * HOUR,
            delay: 5 * SECOND,
            delay_function: "constant".into(),
            max_delay: 0,
            unlimited: false,
        }
    }
}

/// The group's scratch disk (`alloc/data`), 300 MB by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EphemeralDisk {
    pub sticky: bool,
    #[serde(rename = "SizeMB")]
    pub size_mb: i64,
    pub migrate: bool,
}

impl Default for EphemeralDisk {
    fn default() -> Self {
        Self {
            sticky: false,
            size_mb: 300,
            migrate: false,
        }
    }
}

/// A group of tasks placed together on one node, `Count` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroup {
    pub name: String,
    pub count: i64,
    pub update: Option<UpdateStrategy>,
    pub migrate: Option<MigrateStrategy>,
    pub constraints: Option<Vec<Constraint>>,
    pub scaling: Option<Value>,
    pub restart_policy: Option<RestartPolicy>,
    pub disconnect: Option<Value>,
    pub tasks: Vec<Task>,
    pub ephemeral_disk: EphemeralDisk,
    pub meta: Option<BTreeMap<String, String>>,
    pub reschedule_policy: Option<ReschedulePolicy>,
    pub affinities: Option<Vec<Affinity>>,
    pub spreads: Option<Vec<Spread>>,
    pub networks: Option<Vec<NetworkResource>>,
    pub consul: Option<Value>,
    pub services: Option<Value>,
    pub volumes: Option<Value>,
    pub shutdown_delay: Option<i64>,
    pub max_run_duration: Option<i64>,
    pub stop_after_client_disconnect: Option<i64>,
    pub max_client_disconnect: Option<i64>,
    pub prevent_reschedule_on_lost: bool,
}

impl Default for TaskGroup {
    fn default() -> Self {
        Self {
            name: String::new(),
            count: 1,
            update: None,
            migrate: None,
            constraints: None,
            scaling: None,
            restart_policy: None,
            disconnect: None,
            tasks: Vec::new(),
            ephemeral_disk: EphemeralDisk::default(),
            meta: None,
            reschedule_policy: None,
            affinities: None,
            spreads: None,
            networks: None,
            consul: None,
            services: None,
            volumes: None,
            shutdown_delay: None,
            max_run_duration: None,
            stop_after_client_disconnect: None,
            max_client_disconnect: None,
            prevent_reschedule_on_lost: false,
        }
    }
}

impl TaskGroup {
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|task| task.name == name)
    }
}
