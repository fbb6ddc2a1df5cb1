//! Wire types of the jobs API page (`/v1/jobs`, `/v1/job/:id`): the job as
//! the server stores and emits it, field for field in Nomad's order.
//!
//! Two shapes exist, as in Nomad: [`api`] is what a client submits (every
//! field optional, so "not given" differs from zero), and the types here
//! are what [`canonicalize`] makes of it (every default filled in, every
//! field present on the wire). The scheduler and the client work on the
//! canonical shape only.

pub mod api;
pub mod canonicalize;
pub mod group;
pub mod task;
pub mod validate;
pub mod volumes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use group::{
    EphemeralDisk, MigrateStrategy, ReschedulePolicy, RestartPolicy, TaskGroup, UpdateStrategy,
};
pub use task::{
    Affinity, Constraint, DnsConfig, LogConfig, NetworkResource, Port, RequestedDevice, Resources,
    Spread, SpreadTarget, Task, TaskArtifact, TaskLifecycle,
};
pub use volumes::{VolumeMount, VolumeRequest, VOLUME_TYPE_CSI, VOLUME_TYPE_HOST};

pub const JOB_TYPE_SERVICE: &str = "service";
pub const JOB_TYPE_BATCH: &str = "batch";
pub const JOB_TYPE_SYSTEM: &str = "system";
pub const JOB_TYPE_SYSBATCH: &str = "sysbatch";
pub const JOB_TYPE_CORE: &str = "_core";

pub const JOB_STATUS_PENDING: &str = "pending";
pub const JOB_STATUS_RUNNING: &str = "running";
pub const JOB_STATUS_DEAD: &str = "dead";

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_NODE_POOL: &str = "default";
pub const DEFAULT_PRIORITY: i64 = 50;
pub const MAX_PRIORITY: i64 = 100;

/// `periodic {}`: a batch or sysbatch job launched on a cron schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeriodicConfig {
    pub enabled: bool,
    pub spec: String,
    pub specs: Option<Vec<String>>,
    pub spec_type: String,
    pub prohibit_overlap: bool,
    pub time_zone: String,
}

/// `parameterized {}`: a batch or sysbatch job run by dispatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ParameterizedJobConfig {
    pub payload: String,
    pub meta_required: Option<Vec<String>>,
    pub meta_optional: Option<Vec<String>>,
}

/// A job as stored: what `GET /v1/job/:id` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Job {
    pub stop: bool,
    pub region: String,
    pub namespace: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    pub name: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    pub priority: i64,
    pub all_at_once: bool,
    pub datacenters: Option<Vec<String>>,
    pub node_pool: String,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
    pub spreads: Option<Vec<Spread>>,
    pub task_groups: Vec<TaskGroup>,
    pub update: UpdateStrategy,
    pub multiregion: Option<Value>,
    pub periodic: Option<PeriodicConfig>,
    pub parameterized_job: Option<ParameterizedJobConfig>,
    pub dispatched: bool,
    pub dispatch_idempotency_token: String,
    pub payload: Option<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub consul_namespace: String,
    pub vault_namespace: String,
    #[serde(rename = "NomadTokenID")]
    pub nomad_token_id: String,
    pub status: String,
    pub status_description: String,
    pub stable: bool,
    pub version: u64,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    #[serde(rename = "UI")]
    pub ui: Option<Value>,
    pub version_tag: Option<Value>,
}

impl Default for Job {
    fn default() -> Self {
        Self {
            stop: false,
            region: "global".into(),
            namespace: DEFAULT_NAMESPACE.into(),
            id: String::new(),
            parent_id: String::new(),
            name: String::new(),
            job_type: JOB_TYPE_SERVICE.into(),
            priority: DEFAULT_PRIORITY,
            all_at_once: false,
            datacenters: None,
            node_pool: DEFAULT_NODE_POOL.into(),
            constraints: None,
            affinities: None,
            spreads: None,
            task_groups: Vec::new(),
            update: UpdateStrategy::default(),
            multiregion: None,
            periodic: None,
            parameterized_job: None,
            dispatched: false,
            dispatch_idempotency_token: String::new(),
            payload: None,
            meta: None,
            consul_namespace: String::new(),
            vault_namespace: String::new(),
            nomad_token_id: String::new(),
            status: String::new(),
            status_description: String::new(),
            stable: false,
            version: 0,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            ui: None,
            version_tag: None,
        }
    }
}

impl Job {
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|group| group.name == name)
    }

    /// Periodic or parameterized (and not itself a launched child): such a
    /// job is a template, registering it creates no evaluation.
    pub fn is_template(&self) -> bool {
        self.periodic
            .as_ref()
            .is_some_and(|periodic| periodic.enabled)
            || (self.parameterized_job.is_some() && !self.dispatched)
    }

    pub fn is_system(&self) -> bool {
        self.job_type == JOB_TYPE_SYSTEM || self.job_type == JOB_TYPE_SYSBATCH
    }

    /// Whether two versions differ in what the user specified, ignoring
    /// what the server stamps (indexes, version, status, submit time):
    /// Nomad's `SpecChanged`, which decides whether a register makes a new
    /// version.
    pub fn spec_changed(&self, other: &Job) -> bool {
        let strip = |job: &Job| Job {
            status: String::new(),
            status_description: String::new(),
            stable: false,
            version: 0,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            nomad_token_id: String::new(),
            ..job.clone()
        };
        strip(self) != strip(other)
    }

    /// The list stub `GET /v1/jobs` returns.
    pub fn stub(&self, summary: Option<JobSummary>, with_meta: bool) -> JobListStub {
        JobListStub {
            id: self.id.clone(),
            parent_id: self.parent_id.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            datacenters: self.datacenters.clone(),
            node_pool: self.node_pool.clone(),
            multiregion: self.multiregion.clone(),
            job_type: self.job_type.clone(),
            priority: self.priority,
            periodic: self.periodic.is_some(),
            parameterized_job: self.parameterized_job.is_some() && !self.dispatched,
            stop: self.stop,
            status: self.status.clone(),
            status_description: self.status_description.clone(),
            job_summary: summary,
            create_index: self.create_index,
            modify_index: self.modify_index,
            job_modify_index: self.job_modify_index,
            submit_time: self.submit_time,
            meta: if with_meta { self.meta.clone() } else { None },
            with_meta,
        }
    }
}

/// One row of `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub namespace: String,
    pub datacenters: Option<Vec<String>>,
    pub node_pool: String,
    pub multiregion: Option<Value>,
    #[serde(rename = "Type")]
    pub job_type: String,
    pub priority: i64,
    pub periodic: bool,
    pub parameterized_job: bool,
    pub stop: bool,
    pub status: String,
    pub status_description: String,
    pub job_summary: Option<JobSummary>,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub submit_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meta: Option<BTreeMap<String, String>>,
    /// Whether `Meta` was asked for (`?meta=true`); not on the wire.
    #[serde(skip)]
    pub with_meta: bool,
}

/// Allocation counts of one group, by client status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroupSummary {
    pub queued: i64,
    pub complete: i64,
    pub failed: i64,
    pub running: i64,
    pub starting: i64,
    pub lost: i64,
    pub unknown: i64,
}

/// Child jobs of a periodic or parameterized parent, by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobChildrenSummary {
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
}

/// `GET /v1/job/:id/summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobSummary {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub namespace: String,
    pub summary: BTreeMap<String, TaskGroupSummary>,
    pub children: JobChildrenSummary,
    pub create_index: u64,
    pub modify_index: u64,
}

impl JobSummary {
    /// Every group of the job, with zeros (Nomad shows them from the first
    /// register).
    pub fn for_job(job: &Job) -> Self {
        Self {
            job_id: job.id.clone(),
            namespace: job.namespace.clone(),
            summary: job
                .task_groups
                .iter()
                .map(|group| (group.name.clone(), TaskGroupSummary::default()))
                .collect(),
            children: JobChildrenSummary::default(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

#[cfg(test)]
mod tests;

/// `JobRegisterResponse`, the answer to a register or a stop: the write's
/// meta is embedded in the body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobRegisterResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_modify_index: u64,
    pub warnings: String,
    pub index: u64,
    pub last_contact: u64,
    pub known_leader: bool,
    pub next_token: String,
}
