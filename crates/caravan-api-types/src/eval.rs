//! Wire types of the evaluations API page (`/v1/evaluations`,
//! `/v1/evaluation/:id`). An evaluation is emitted with every empty field
//! left out (Nomad's whole-struct omitempty); its stub emits every field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::optional_rfc3339;

pub const EVAL_STATUS_BLOCKED: &str = "blocked";
pub const EVAL_STATUS_PENDING: &str = "pending";
pub const EVAL_STATUS_COMPLETE: &str = "complete";
pub const EVAL_STATUS_FAILED: &str = "failed";
/// One "l", as Nomad spells it for evaluations.
pub const EVAL_STATUS_CANCELED: &str = "canceled";

pub const TRIGGER_JOB_REGISTER: &str = "job-register";
pub const TRIGGER_JOB_DEREGISTER: &str = "job-deregister";
pub const TRIGGER_PERIODIC_JOB: &str = "periodic-job";
pub const TRIGGER_NODE_DRAIN: &str = "node-drain";
pub const TRIGGER_NODE_UPDATE: &str = "node-update";
pub const TRIGGER_ALLOC_STOP: &str = "alloc-stop";
pub const TRIGGER_ROLLING_UPDATE: &str = "rolling-update";
pub const TRIGGER_FAILED_FOLLOW_UP: &str = "failed-follow-up";
pub const TRIGGER_MAX_PLANS: &str = "max-plan-attempts";
pub const TRIGGER_RETRY_FAILED_ALLOC: &str = "alloc-failure";
pub const TRIGGER_QUEUED_ALLOCS: &str = "queued-allocs";
pub const TRIGGER_PREEMPTION: &str = "preemption";
pub const TRIGGER_SCALING: &str = "job-scaling";
pub const TRIGGER_ALLOC_RESCHEDULE: &str = "alloc-reschedule";

pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Why a group's allocations could not all be placed, and how the nodes
/// were scored: an evaluation's `FailedTGAllocs` and an allocation's
/// `Metrics`. Every field is emitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocMetric {
    pub nodes_evaluated: i64,
    pub nodes_filtered: i64,
    pub nodes_in_pool: i64,
    pub node_pool: String,
    pub nodes_available: Option<BTreeMap<String, i64>>,
    pub class_filtered: Option<BTreeMap<String, i64>>,
    pub constraint_filtered: Option<BTreeMap<String, i64>>,
    pub nodes_exhausted: i64,
    pub class_exhausted: Option<BTreeMap<String, i64>>,
    pub dimension_exhausted: Option<BTreeMap<String, i64>>,
    pub quota_exhausted: Option<Vec<String>>,
    pub resources_exhausted: Option<BTreeMap<String, serde_json::Value>>,
    pub scores: Option<BTreeMap<String, f64>>,
    pub score_meta_data: Option<Vec<NodeScoreMeta>>,
    pub allocation_time: i64,
    pub coalesced_failures: i64,
}

/// One node's scores, as `ScoreMetaData` lists the best few.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeScoreMeta {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub scores: BTreeMap<String, f64>,
    pub norm_score: f64,
}

/// An evaluation: a reason to run the scheduler for one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Evaluation {
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    #[serde(skip_serializing_if = "is_default")]
    pub priority: i64,
    #[serde(rename = "Type", skip_serializing_if = "is_default")]
    pub eval_type: String,
    #[serde(skip_serializing_if = "is_default")]
    pub triggered_by: String,
    #[serde(rename = "JobID", skip_serializing_if = "is_default")]
    pub job_id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub job_modify_index: u64,
    #[serde(rename = "NodeID", skip_serializing_if = "is_default")]
    pub node_id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub node_modify_index: u64,
    #[serde(rename = "DeploymentID", skip_serializing_if = "is_default")]
    pub deployment_id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub status: String,
    #[serde(skip_serializing_if = "is_default")]
    pub status_description: String,
    #[serde(skip_serializing_if = "is_default")]
    pub wait: i64,
    #[serde(with = "optional_rfc3339", skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "is_default")]
    pub next_eval: String,
    #[serde(skip_serializing_if = "is_default")]
    pub previous_eval: String,
    #[serde(skip_serializing_if = "is_default")]
    pub blocked_eval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related_evals: Option<Vec<EvaluationStub>>,
    #[serde(rename = "FailedTGAllocs", skip_serializing_if = "Option::is_none")]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_eligibility: Option<BTreeMap<String, bool>>,
    #[serde(skip_serializing_if = "is_default")]
    pub quota_limit_reached: String,
    #[serde(skip_serializing_if = "is_default")]
    pub escaped_computed_class: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub annotate_plan: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_allocations: Option<BTreeMap<String, i64>>,
    #[serde(skip_serializing_if = "is_default")]
    pub snapshot_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub create_time: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub modify_time: i64,
}

impl Evaluation {
    pub fn terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            EVAL_STATUS_COMPLETE | EVAL_STATUS_FAILED | EVAL_STATUS_CANCELED
        )
    }

    pub fn stub(&self) -> EvaluationStub {
        EvaluationStub {
            id: self.id.clone(),
            namespace: self.namespace.clone(),
            priority: self.priority,
            eval_type: self.eval_type.clone(),
            triggered_by: self.triggered_by.clone(),
            job_id: self.job_id.clone(),
            node_id: self.node_id.clone(),
            deployment_id: self.deployment_id.clone(),
            status: self.status.clone(),
            status_description: self.status_description.clone(),
            wait_until: self.wait_until,
            next_eval: self.next_eval.clone(),
            previous_eval: self.previous_eval.clone(),
            blocked_eval: self.blocked_eval.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            create_time: self.create_time,
            modify_time: self.modify_time,
        }
    }
}

/// An evaluation in lists (`?related=true`): every field emitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EvaluationStub {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    #[serde(rename = "Type")]
    pub eval_type: String,
    pub triggered_by: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    #[serde(with = "optional_rfc3339")]
    pub wait_until: Option<DateTime<Utc>>,
    pub next_eval: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}
