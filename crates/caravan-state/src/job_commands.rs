//! The payloads of the job, evaluation and allocation writes. A plan
//! carries its job once; the allocations it places refer to it, so a plan
//! of 10,000 placements is not 10,000 copies of the job in the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use caravan_api_types::alloc::{AllocDeploymentStatus, Allocation, DesiredTransition, TaskState};
use caravan_api_types::eval::Evaluation;
use caravan_api_types::job::Job;
use serde::{Deserialize, Serialize};

/// A job registration: the canonical, validated job and the evaluation to
/// create with it (none for periodic and parameterized jobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRegister {
    pub job: Arc<Job>,
    pub eval: Option<Evaluation>,
    /// `EnforceIndex`: register only if the stored `JobModifyIndex` equals
    /// this (0: only if the job does not exist).
    pub enforce_index: Option<u64>,
    /// Refuse the job if its namespace does not exist. Entries written
    /// before namespaces existed read as `false` and apply as they did
    /// then, so every server replays them alike.
    #[serde(default)]
    pub namespace_checked: bool,
}

/// A job stopped (a new version with `Stop: true`) or, with `purge`, deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDeregister {
    pub namespace: String,
    pub job_id: String,
    pub purge: bool,
    pub eval: Option<Evaluation>,
    /// UnixNano, the stop version's `SubmitTime`.
    pub submit_time: i64,
}

/// An allocation the plan stops or evicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocStop {
    pub id: String,
    /// `stop` or `evict`.
    pub desired_status: String,
    pub desired_description: String,
    /// Set when the servers decide the client status (`lost`).
    pub client_status: Option<String>,
    pub followup_eval_id: Option<String>,
    pub preempted_by_allocation: Option<String>,
    /// The replacement of a rescheduled or migrated allocation (entries
    /// written before this field read as none).
    #[serde(default)]
    pub next_allocation: Option<String>,
}

/// What a scheduler's plan commits, after the plan applier checked every
/// node against the latest state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanResult {
    /// The job the placed allocations run (the version the scheduler saw).
    pub job: Option<Arc<Job>>,
    /// New or updated allocations, without their `Job` (it is `job`).
    pub allocs: Vec<Allocation>,
    pub stops: Vec<AllocStop>,
    /// The evaluation's own update, and any blocked or follow-up evals.
    pub evals: Vec<Evaluation>,
    /// UnixNano, the allocations' create/modify time.
    pub now: i64,
}

/// What a client reports about one allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocClientUpdate {
    pub id: String,
    pub client_status: String,
    pub client_description: String,
    pub task_states: Option<BTreeMap<String, TaskState>>,
    /// The client's health verdict (entries written before this field
    /// read as none: nothing to change).
    #[serde(default)]
    pub deployment_status: Option<AllocDeploymentStatus>,
}

/// A batch of client updates, with the evaluations they call for (a
/// failed allocation to reschedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocsClientUpdate {
    pub updates: Vec<AllocClientUpdate>,
    pub evals: Vec<Evaluation>,
    pub now: i64,
}

/// Desired transitions set on allocations (stop, migrate, reschedule),
/// with the evaluations that act on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocsTransition {
    pub transitions: BTreeMap<String, DesiredTransition>,
    pub evals: Vec<Evaluation>,
    pub now: i64,
}

/// An object garbage collection removes, as it was when collection was
/// decided: removed only if its `ModifyIndex` is still this one (a
/// decision made on an older snapshot never removes what changed since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collected {
    pub id: String,
    pub modify_index: u64,
}

/// What garbage collection removes of one job: terminal evaluations and
/// allocations, and with `purge` the job itself (its versions and summary
/// too), only once nothing else of it is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCollected {
    pub namespace: String,
    pub job_id: String,
    /// The job's `ModifyIndex` when decided (none: the job was gone). If
    /// the job has changed since, nothing of it is removed.
    pub job_modify_index: Option<u64>,
    pub evals: Vec<Collected>,
    pub allocs: Vec<Collected>,
    pub purge: bool,
}

/// One garbage collection write (Nomad's core scheduler's deletes): per
/// job, then down nodes with no live allocation, then expired ACL tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcCollect {
    pub jobs: Vec<JobCollected>,
    pub nodes: Vec<Collected>,
    pub tokens: Vec<Collected>,
}

impl GcCollect {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.nodes.is_empty() && self.tokens.is_empty()
    }

    /// How many objects it names (a write is kept to a bounded size).
    pub fn len(&self) -> usize {
        self.jobs
            .iter()
            .map(|job| job.evals.len() + job.allocs.len() + usize::from(job.purge))
            .sum::<usize>()
            + self.nodes.len()
            + self.tokens.len()
    }
}
