//! The job, evaluation and allocation tables and how their writes change
//! them (Nomad's `state_store.go` rules for jobs, versions, summaries,
//! evals and allocs).
//!
//! Keys of namespaced rows are `<namespace>\0<id>` ([`ns_key`]): job IDs
//! may contain `/` (dispatched and periodic children), namespaces contain
//! neither, and NUL sorts first, so key order is namespace, then ID, as
//! Nomad lists them.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::{
    Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_LOST,
    ALLOC_CLIENT_PENDING, ALLOC_CLIENT_RUNNING, ALLOC_CLIENT_UNKNOWN,
};
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_CANCELED, EVAL_STATUS_COMPLETE,
    EVAL_STATUS_PENDING,
};
use caravan_api_types::job::{
    Job, JobSummary, TaskGroupSummary, JOB_STATUS_DEAD, JOB_STATUS_PENDING, JOB_STATUS_RUNNING,
    JOB_TYPE_SYSTEM,
};

use super::{State, Table};
use crate::command::CommandResult;
use crate::job_commands::{
    AllocsClientUpdate, AllocsTransition, JobDeregister, JobRegister, PlanResult,
};
use crate::table::{Index, Schema, Touched};

/// How many versions of a job are kept (Nomad's `job_tracked_versions`).
pub const JOB_TRACKED_VERSIONS: usize = 6;

pub const JOBS_BY_TYPE: &str = "type";
pub const JOBS_BY_PARENT: &str = "parent";
pub const VERSIONS_BY_JOB: &str = "job";
pub const EVALS_BY_JOB: &str = "job";
pub const EVALS_BY_STATUS: &str = "status";
pub const ALLOCS_BY_JOB: &str = "job";
pub const ALLOCS_BY_EVAL: &str = "eval";
pub use super::ALLOCS_BY_NODE;

/// The key of a namespaced row.
pub fn ns_key(namespace: &str, id: &str) -> String {
    format!("{namespace}\0{id}")
}

/// The key of one version of a job: versions sort numerically.
pub fn version_key(namespace: &str, id: &str, version: u64) -> String {
    format!("{namespace}\0{id}\0{version:020}")
}

pub struct JobsTable;

impl Schema for JobsTable {
    type Key = String;
    type Value = Arc<Job>;
    const TABLE: Table = Table::Jobs;
    fn indexes() -> &'static [Index<Arc<Job>>] {
        &[
            Index {
                name: JOBS_BY_TYPE,
                values: |job| vec![job.job_type.clone()],
            },
            Index {
                name: JOBS_BY_PARENT,
                values: |job| {
                    if job.parent_id.is_empty() {
                        Vec::new()
                    } else {
                        vec![ns_key(&job.namespace, &job.parent_id)]
                    }
                },
            },
        ]
    }
}

/// Every kept version of every job, newest last within a job.
pub struct JobVersionsTable;

impl Schema for JobVersionsTable {
    type Key = String;
    type Value = Arc<Job>;
    const TABLE: Table = Table::JobVersions;
    fn indexes() -> &'static [Index<Arc<Job>>] {
        &[Index {
            name: VERSIONS_BY_JOB,
            values: |job| vec![ns_key(&job.namespace, &job.id)],
        }]
    }
}

pub struct JobSummariesTable;

impl Schema for JobSummariesTable {
    type Key = String;
    type Value = JobSummary;
    const TABLE: Table = Table::JobSummaries;
    fn indexes() -> &'static [Index<JobSummary>] {
        &[]
    }
}

pub struct EvalsTable;

impl Schema for EvalsTable {
    type Key = String;
    type Value = Arc<Evaluation>;
    const TABLE: Table = Table::Evals;
    fn indexes() -> &'static [Index<Arc<Evaluation>>] {
        &[
            Index {
                name: EVALS_BY_JOB,
                values: |eval| vec![ns_key(&eval.namespace, &eval.job_id)],
            },
            // The broker's queue is the pending evaluations and the blocked
            // tracker the blocked ones: neither walks the terminal history.
            Index {
                name: EVALS_BY_STATUS,
                values: |eval| vec![eval.status.clone()],
            },
        ]
    }
}

pub struct AllocsTable;

impl Schema for AllocsTable {
    type Key = String;
    type Value = Arc<Allocation>;
    const TABLE: Table = Table::Allocs;
    fn indexes() -> &'static [Index<Arc<Allocation>>] {
        &[
            Index {
                name: ALLOCS_BY_NODE,
                values: |alloc| vec![alloc.node_id.clone()],
            },
            Index {
                name: ALLOCS_BY_JOB,
                values: |alloc| vec![ns_key(&alloc.namespace, &alloc.job_id)],
            },
            Index {
                name: ALLOCS_BY_EVAL,
                values: |alloc| vec![alloc.eval_id.clone()],
            },
        ]
    }
}

/// The summary counter an allocation's client status counts under.
pub(super) fn counter<'a>(
    summary: &'a mut TaskGroupSummary,
    client_status: &str,
) -> Option<&'a mut i64> {
    match client_status {
        ALLOC_CLIENT_PENDING => Some(&mut summary.starting),
        ALLOC_CLIENT_RUNNING => Some(&mut summary.running),
        ALLOC_CLIENT_COMPLETE => Some(&mut summary.complete),
        ALLOC_CLIENT_FAILED => Some(&mut summary.failed),
        ALLOC_CLIENT_LOST => Some(&mut summary.lost),
        ALLOC_CLIENT_UNKNOWN => Some(&mut summary.unknown),
        _ => None,
    }
}

/// Nomad's refusal of a job in a namespace that does not exist.
pub fn nonexistent_namespace(job_id: &str, namespace: &str) -> String {
    format!("job {job_id:?} is in nonexistent namespace {namespace:?}")
}

/// The text of an `EnforceIndex` refusal (jobs-api.md §1.8).
fn enforce_refusal(expected: u64, stored: Option<u64>) -> Option<String> {
    let prefix = format!("Enforcing job modify index {expected}");
    match (expected, stored) {
        (0, None) => None,
        (0, Some(_)) => Some(format!("{prefix}: job already exists")),
        (_, None) => Some(format!("{prefix}: job does not exist")),
        (expected, Some(current)) if expected != current => Some(format!(
            "{prefix}: job exists with conflicting job modify index: {current}"
        )),
        _ => None,
    }
}

impl State {
    /// Points every allocation's job at the stored version it equals (after
    /// a restore, where each was read as its own copy).
    pub(crate) fn share_alloc_jobs(&mut self) {
        let mut touched = Touched::new();
        let relinked: Vec<(String, Arc<Allocation>)> = self
            .allocs
            .iter()
            .filter_map(|(id, alloc)| {
                let job = alloc.job.as_ref()?;
                let stored =
                    self.job_versions
                        .get(&version_key(&job.namespace, &job.id, job.version))?;
                (!Arc::ptr_eq(stored, job) && **stored == **job).then(|| {
                    let shared = Allocation {
                        job: Some(Arc::clone(stored)),
                        ..(**alloc).clone()
                    };
                    (id.clone(), Arc::new(shared))
                })
            })
            .collect();
        for (id, alloc) in relinked {
            self.allocs.insert(id, alloc, &mut touched);
        }
    }

    pub fn job(&self, namespace: &str, id: &str) -> Option<&Arc<Job>> {
        self.jobs.get(&ns_key(namespace, id))
    }

    /// Every job, by namespace then ID.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.jobs.values()
    }

    pub fn jobs_by_type<'a>(&'a self, job_type: &str) -> impl Iterator<Item = &'a Arc<Job>> + 'a {
        self.jobs.by_index(JOBS_BY_TYPE, job_type)
    }

    /// The kept versions of a job, newest first.
    pub fn job_versions(&self, namespace: &str, id: &str) -> Vec<Arc<Job>> {
        let mut versions: Vec<Arc<Job>> = self
            .job_versions
            .by_index(VERSIONS_BY_JOB, &ns_key(namespace, id))
            .cloned()
            .collect();
        versions.reverse();
        versions
    }

    pub fn job_version(&self, namespace: &str, id: &str, version: u64) -> Option<&Arc<Job>> {
        self.job_versions.get(&version_key(namespace, id, version))
    }

    pub fn job_summary(&self, namespace: &str, id: &str) -> Option<&JobSummary> {
        self.job_summaries.get(&ns_key(namespace, id))
    }

    pub fn eval(&self, id: &str) -> Option<&Arc<Evaluation>> {
        self.evals.get(id)
    }

    /// Every evaluation, by ID.
    pub fn evals(&self) -> impl Iterator<Item = &Arc<Evaluation>> {
        self.evals.values()
    }

    pub fn evals_by_job<'a>(
        &'a self,
        namespace: &str,
        job_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Evaluation>> + 'a {
        self.evals
            .by_index(EVALS_BY_JOB, &ns_key(namespace, job_id))
    }

    /// The evaluations in one status (`pending`, `blocked`, ...).
    pub fn evals_with_status<'a>(
        &'a self,
        status: &str,
    ) -> impl Iterator<Item = &'a Arc<Evaluation>> + 'a {
        self.evals.by_index(EVALS_BY_STATUS, status)
    }

    pub fn alloc(&self, id: &str) -> Option<&Arc<Allocation>> {
        self.allocs.get(id)
    }

    /// Every allocation, by ID.
    pub fn allocs(&self) -> impl Iterator<Item = &Arc<Allocation>> {
        self.allocs.values()
    }

    pub fn allocs_by_node<'a>(
        &'a self,
        node_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        self.allocs.by_index(ALLOCS_BY_NODE, node_id)
    }

    pub fn allocs_by_job<'a>(
        &'a self,
        namespace: &str,
        job_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        self.allocs
            .by_index(ALLOCS_BY_JOB, &ns_key(namespace, job_id))
    }

    pub fn allocs_by_eval<'a>(
        &'a self,
        eval_id: &str,
    ) -> impl Iterator<Item = &'a Arc<Allocation>> + 'a {
        self.allocs.by_index(ALLOCS_BY_EVAL, eval_id)
    }

    /// Nomad's job status: system, periodic and parameterized jobs run
    /// until stopped; others run while an allocation is not terminal, are
    /// pending while an evaluation is, and are dead after that; a job with
    /// neither is pending, unless they were deleted (collected), when it is
    /// dead.
    fn job_status(&self, job: &Job, deleted: bool) -> &'static str {
        if job.job_type == JOB_TYPE_SYSTEM || job.is_template() {
            return if job.stop {
                JOB_STATUS_DEAD
            } else {
                JOB_STATUS_RUNNING
            };
        }
        let mut seen = false;
        for alloc in self.allocs_by_job(&job.namespace, &job.id) {
            seen = true;
            if !alloc.terminal() {
                return JOB_STATUS_RUNNING;
            }
        }
        for eval in self.evals_by_job(&job.namespace, &job.id) {
            seen = true;
            if !eval.terminal() {
                return JOB_STATUS_PENDING;
            }
        }
        if seen || deleted {
            JOB_STATUS_DEAD
        } else {
            JOB_STATUS_PENDING
        }
    }

    /// Re-derives the status of each job in `keys`, storing those that
    /// changed (a status change moves `ModifyIndex`, not `JobModifyIndex`).
    pub(super) fn refresh_job_statuses(
        &mut self,
        keys: &BTreeSet<String>,
        index: u64,
        touched: &mut Touched,
    ) {
        self.refresh_statuses(keys, false, index, touched);
    }

    /// [`Self::refresh_job_statuses`] after evaluations or allocations of
    /// these jobs were deleted (Nomad's `evalDelete`).
    pub(super) fn refresh_job_statuses_after_delete(
        &mut self,
        keys: &BTreeSet<String>,
        index: u64,
        touched: &mut Touched,
    ) {
        self.refresh_statuses(keys, true, index, touched);
    }

    fn refresh_statuses(
        &mut self,
        keys: &BTreeSet<String>,
        deleted: bool,
        index: u64,
        touched: &mut Touched,
    ) {
        for key in keys {
            let Some(job) = self.jobs.get(key).cloned() else {
                continue;
            };
            let status = self.job_status(&job, deleted);
            if job.status != status {
                let mut changed = (*job).clone();
                changed.status = status.into();
                changed.modify_index = index;
                self.jobs.insert(key.clone(), Arc::new(changed), touched);
                self.touch(Table::Jobs, index, touched);
            }
        }
    }

    fn put_evals(
        &mut self,
        evals: &[Evaluation],
        index: u64,
        touched: &mut Touched,
        jobs: &mut BTreeSet<String>,
    ) {
        for eval in evals {
            let create_index = self
                .evals
                .get(&eval.id)
                .map_or(index, |stored| stored.create_index);
            let mut stored = Evaluation {
                create_index,
                modify_index: index,
                ..eval.clone()
            };
            // A node that changed after the snapshot a blocked eval was
            // planned on may fit it, and that change has already been
            // reacted to, before the eval existed (Nomad's missed
            // unblock): the eval goes straight back to pending.
            if stored.status == EVAL_STATUS_BLOCKED
                && stored.snapshot_index > 0
                && self.table_index(Table::Nodes) > stored.snapshot_index
            {
                stored.status = EVAL_STATUS_PENDING.to_string();
            }
            if let Some(queued) = &stored.queued_allocations {
                let key = ns_key(&stored.namespace, &stored.job_id);
                if let Some(mut summary) = self.job_summaries.get(&key).cloned() {
                    for (group, count) in queued {
                        if let Some(group) = summary.summary.get_mut(group) {
                            group.queued = *count;
                        }
                    }
                    summary.modify_index = index;
                    self.job_summaries.insert(key, summary, touched);
                    self.touch(Table::JobSummaries, index, touched);
                }
            }
            jobs.insert(ns_key(&stored.namespace, &stored.job_id));
            let superseded = self.superseded_blocked(&mut stored);
            self.evals
                .insert(stored.id.clone(), Arc::new(stored), touched);
            for eval in superseded {
                self.evals.insert(eval.id.clone(), Arc::new(eval), touched);
            }
        }
        if !evals.is_empty() {
            self.touch(Table::Evals, index, touched);
        }
    }

    /// The blocked evaluations of `stored`'s job that it makes redundant,
    /// written `canceled` in the same write (Nomad's rules, decided here so
    /// every server agrees): a job keeps one blocked evaluation, the one
    /// planned on the newer state, and a complete evaluation that placed
    /// everything cancels the job's blocked ones. A new blocked evaluation
    /// older than the one kept is itself stored `canceled`.
    fn superseded_blocked(&self, stored: &mut Evaluation) -> Vec<Evaluation> {
        let newness = |eval: &Evaluation| eval.create_index.max(eval.snapshot_index);
        let placed_all = stored.status == EVAL_STATUS_COMPLETE
            && stored
                .failed_tg_allocs
                .as_ref()
                .is_none_or(|failed| failed.is_empty());
        if !placed_all && stored.status != EVAL_STATUS_BLOCKED {
            return Vec::new();
        }
        let others: Vec<&Arc<Evaluation>> = self
            .evals_by_job(&stored.namespace, &stored.job_id)
            .filter(|other| other.status == EVAL_STATUS_BLOCKED && other.id != stored.id)
            .collect();
        let duplicate = format!(
            "existing blocked evaluation exists for job \"{}\"",
            stored.job_id
        );
        if !placed_all && others.iter().any(|other| newness(other) > newness(stored)) {
            stored.status = EVAL_STATUS_CANCELED.to_string();
            stored.status_description = duplicate;
            return Vec::new();
        }
        let description = if placed_all {
            format!("evaluation \"{}\" successful", stored.id)
        } else {
            duplicate
        };
        others
            .into_iter()
            .map(|other| Evaluation {
                status: EVAL_STATUS_CANCELED.to_string(),
                status_description: description.clone(),
                modify_index: stored.modify_index,
                modify_time: stored.modify_time.max(other.modify_time + 1),
                ..(**other).clone()
            })
            .collect()
    }

    /// Moves an allocation's summary count from its old client status to
    /// its new one.
    fn count_alloc(
        &mut self,
        old: Option<&Allocation>,
        new: &Allocation,
        index: u64,
        touched: &mut Touched,
    ) {
        if old.is_some_and(|old| old.client_status == new.client_status) {
            return;
        }
        let key = ns_key(&new.namespace, &new.job_id);
        let Some(mut summary) = self.job_summaries.get(&key).cloned() else {
            return;
        };
        let group = summary.summary.entry(new.task_group.clone()).or_default();
        if let Some(old) = old {
            if let Some(count) = counter(group, &old.client_status) {
                *count = (*count - 1).max(0);
            }
        }
        if let Some(count) = counter(group, &new.client_status) {
            *count += 1;
        }
        summary.modify_index = index;
        self.job_summaries.insert(key, summary, touched);
        self.touch(Table::JobSummaries, index, touched);
    }

    fn put_alloc(&mut self, alloc: Allocation, index: u64, touched: &mut Touched) {
        let old = self.allocs.get(&alloc.id).cloned();
        self.count_alloc(old.as_deref(), &alloc, index, touched);
        if alloc.terminal() && old.as_ref().is_some_and(|old| !old.terminal()) {
            self.allocs_freed.0 = index;
        }
        let node_id = alloc.node_id.clone();
        self.allocs
            .insert(alloc.id.clone(), Arc::new(alloc), touched);
        self.note_node_allocs(&node_id, index);
        if let Some(old) = old.filter(|old| old.node_id != node_id) {
            self.note_node_allocs(&old.node_id, index);
        }
    }

    fn put_job_version(&mut self, job: Arc<Job>, index: u64, touched: &mut Touched) {
        let key = ns_key(&job.namespace, &job.id);
        self.job_versions.insert(
            version_key(&job.namespace, &job.id, job.version),
            Arc::clone(&job),
            touched,
        );
        let kept: Vec<u64> = self
            .job_versions
            .by_index(VERSIONS_BY_JOB, &key)
            .map(|version| version.version)
            .collect();
        if kept.len() > JOB_TRACKED_VERSIONS {
            for version in &kept[..kept.len() - JOB_TRACKED_VERSIONS] {
                self.job_versions
                    .remove(&version_key(&job.namespace, &job.id, *version), touched);
            }
        }
        self.touch(Table::JobVersions, index, touched);
        let mut summary = self
            .job_summaries
            .get(&key)
            .cloned()
            .unwrap_or_else(|| JobSummary {
                create_index: index,
                ..JobSummary::for_job(&job)
            });
        for group in &job.task_groups {
            summary.summary.entry(group.name.clone()).or_default();
        }
        summary.modify_index = index;
        self.job_summaries.insert(key.clone(), summary, touched);
        self.touch(Table::JobSummaries, index, touched);
        self.jobs.insert(key, job, touched);
        self.touch(Table::Jobs, index, touched);
    }

    pub(super) fn apply_job_register(
        &mut self,
        register: &JobRegister,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let incoming = &register.job;
        if register.namespace_checked && !self.namespace_exists(&incoming.namespace) {
            return CommandResult::Refused(nonexistent_namespace(
                &incoming.id,
                &incoming.namespace,
            ));
        }
        let key = ns_key(&incoming.namespace, &incoming.id);
        let existing = self.jobs.get(&key).cloned();
        if let Some(expected) = register.enforce_index {
            let stored = existing.as_ref().map(|job| job.job_modify_index);
            if let Some(refusal) = enforce_refusal(expected, stored) {
                return CommandResult::Conflict(refusal);
            }
        }
        if let Some(existing) = &existing {
            if existing.job_type != incoming.job_type {
                return CommandResult::Refused(format!(
                    "cannot update job from type {:?} to {:?}",
                    existing.job_type, incoming.job_type
                ));
            }
        }
        let mut jobs = BTreeSet::from([key.clone()]);
        let changed = existing
            .as_ref()
            .is_none_or(|existing| existing.spec_changed(incoming));
        if changed {
            let mut job = (**incoming).clone();
            job.version = existing.as_ref().map_or(0, |existing| existing.version + 1);
            job.create_index = existing
                .as_ref()
                .map_or(index, |existing| existing.create_index);
            job.modify_index = index;
            job.job_modify_index = index;
            job.stable = false;
            job.status = JOB_STATUS_PENDING.into();
            self.put_job_version(Arc::new(job), index, touched);
        }
        if let Some(eval) = &register.eval {
            let job_modify_index = self
                .jobs
                .get(&key)
                .map_or(index, |job| job.job_modify_index);
            let eval = Evaluation {
                job_modify_index,
                ..eval.clone()
            };
            self.put_evals(std::slice::from_ref(&eval), index, touched, &mut jobs);
        }
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }

    pub(super) fn apply_job_deregister(
        &mut self,
        deregister: &JobDeregister,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let key = ns_key(&deregister.namespace, &deregister.job_id);
        let Some(existing) = self.jobs.get(&key).cloned() else {
            return CommandResult::Done;
        };
        let mut jobs = BTreeSet::from([key.clone()]);
        if deregister.purge {
            self.purge_job(&existing, index, touched);
        } else if !existing.stop {
            let mut job = (*existing).clone();
            job.stop = true;
            job.version += 1;
            job.modify_index = index;
            job.job_modify_index = index;
            job.submit_time = deregister.submit_time;
            job.stable = false;
            self.put_job_version(Arc::new(job), index, touched);
        }
        if let Some(eval) = &deregister.eval {
            self.put_evals(std::slice::from_ref(eval), index, touched, &mut jobs);
        }
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }

    /// Removes a job with its versions and summary (its evaluations and
    /// allocations stay until collected).
    pub(super) fn purge_job(&mut self, job: &Job, index: u64, touched: &mut Touched) {
        let key = ns_key(&job.namespace, &job.id);
        self.jobs.remove(&key, touched);
        let versions: Vec<u64> = self
            .job_versions
            .by_index(VERSIONS_BY_JOB, &key)
            .map(|version| version.version)
            .collect();
        for version in versions {
            self.job_versions
                .remove(&version_key(&job.namespace, &job.id, version), touched);
        }
        self.job_summaries.remove(&key, touched);
        self.touch(Table::Jobs, index, touched);
        self.touch(Table::JobVersions, index, touched);
        self.touch(Table::JobSummaries, index, touched);
    }

    pub(super) fn apply_evals_upsert(
        &mut self,
        evals: &[Evaluation],
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut jobs = BTreeSet::new();
        self.put_evals(evals, index, touched, &mut jobs);
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }

    /// Deletes evaluations and allocations (the reaper, and
    /// `DELETE /v1/evaluations`).
    pub(super) fn apply_evals_delete(
        &mut self,
        evals: &[String],
        allocs: &[String],
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut jobs = BTreeSet::new();
        for id in evals {
            if let Some(eval) = self.evals.remove(id, touched) {
                jobs.insert(ns_key(&eval.namespace, &eval.job_id));
            }
        }
        for id in allocs {
            if let Some(alloc) = self.remove_alloc(id, index, touched) {
                jobs.insert(ns_key(&alloc.namespace, &alloc.job_id));
            }
        }
        self.touch(Table::Evals, index, touched);
        self.touch(Table::Allocs, index, touched);
        self.refresh_job_statuses_after_delete(&jobs, index, touched);
        CommandResult::Done
    }

    pub(super) fn apply_plan(
        &mut self,
        plan: &PlanResult,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut jobs = BTreeSet::new();
        for stop in &plan.stops {
            let Some(stored) = self.allocs.get(&stop.id).cloned() else {
                continue;
            };
            let mut alloc = (*stored).clone();
            alloc.desired_status = stop.desired_status.clone();
            alloc.desired_description = stop.desired_description.clone();
            if let Some(status) = &stop.client_status {
                alloc.client_status = status.clone();
            }
            if let Some(followup) = &stop.followup_eval_id {
                alloc.followup_eval_id = followup.clone();
            }
            if let Some(by) = &stop.preempted_by_allocation {
                alloc.preempted_by_allocation = by.clone();
            }
            if let Some(next) = &stop.next_allocation {
                alloc.next_allocation = next.clone();
            }
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
            alloc.modify_time = plan.now;
            jobs.insert(ns_key(&alloc.namespace, &alloc.job_id));
            self.put_alloc(alloc, index, touched);
        }
        for placed in &plan.allocs {
            let mut alloc = placed.clone();
            let stored = self.allocs.get(&alloc.id).cloned();
            alloc.job = match (&plan.job, &alloc.job) {
                (Some(job), _) => Some(Arc::clone(job)),
                (None, Some(job)) => Some(Arc::clone(job)),
                (None, None) => stored.as_ref().and_then(|stored| stored.job.clone()),
            };
            alloc.create_index = stored.as_ref().map_or(index, |stored| stored.create_index);
            alloc.create_time = stored
                .as_ref()
                .map_or(plan.now, |stored| stored.create_time);
            if let Some(stored) = &stored {
                // The client owns these: the plan's copy is from the
                // worker's snapshot, and a report that landed since (a
                // failure) must not be reverted. Only a plan marking the
                // allocation lost or unknown overrides the status (Nomad's
                // `upsertAllocsImpl`).
                alloc.task_states = stored.task_states.clone();
                // The client's health verdict too (the drainer waits on it).
                alloc.deployment_status = stored.deployment_status.clone();
                if alloc.client_status != ALLOC_CLIENT_LOST
                    && alloc.client_status != ALLOC_CLIENT_UNKNOWN
                {
                    alloc.client_status = stored.client_status.clone();
                    alloc.client_description = stored.client_description.clone();
                }
            }
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
            alloc.modify_time = plan.now;
            jobs.insert(ns_key(&alloc.namespace, &alloc.job_id));
            self.put_alloc(alloc, index, touched);
        }
        if !plan.stops.is_empty() || !plan.allocs.is_empty() {
            self.touch(Table::Allocs, index, touched);
        }
        self.put_evals(&plan.evals, index, touched, &mut jobs);
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }

    pub(super) fn apply_allocs_client_update(
        &mut self,
        update: &AllocsClientUpdate,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut jobs = BTreeSet::new();
        for change in &update.updates {
            let Some(stored) = self.allocs.get(&change.id).cloned() else {
                continue;
            };
            let mut alloc = (*stored).clone();
            alloc.client_status = change.client_status.clone();
            alloc.client_description = change.client_description.clone();
            if change.task_states.is_some() {
                alloc.task_states = change.task_states.clone();
            }
            if let Some(status) = &change.deployment_status {
                let mut status = status.clone();
                status.modify_index = index;
                alloc.deployment_status = Some(status);
            }
            alloc.modify_index = index;
            alloc.modify_time = update.now;
            jobs.insert(ns_key(&alloc.namespace, &alloc.job_id));
            self.put_alloc(alloc, index, touched);
        }
        self.touch(Table::Allocs, index, touched);
        self.put_evals(&update.evals, index, touched, &mut jobs);
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }

    pub(super) fn apply_allocs_transition(
        &mut self,
        transition: &AllocsTransition,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut jobs = BTreeSet::new();
        for (id, wanted) in &transition.transitions {
            let Some(stored) = self.allocs.get(id).cloned() else {
                continue;
            };
            let mut alloc = (*stored).clone();
            let current = &mut alloc.desired_transition;
            macro_rules! merge {
                ($($field:ident),*) => { $( if wanted.$field.is_some() { current.$field = wanted.$field; } )* };
            }
            merge!(
                migrate,
                reschedule,
                force_reschedule,
                no_shutdown_delay,
                migrate_disable_placement
            );
            alloc.modify_index = index;
            alloc.modify_time = transition.now;
            jobs.insert(ns_key(&alloc.namespace, &alloc.job_id));
            self.put_alloc(alloc, index, touched);
        }
        self.touch(Table::Allocs, index, touched);
        self.put_evals(&transition.evals, index, touched, &mut jobs);
        self.refresh_job_statuses(&jobs, index, touched);
        CommandResult::Done
    }
}

/// An evaluation as the job endpoints create it.
pub fn new_eval(job: &Job, triggered_by: &str, id: String, now: i64) -> Evaluation {
    Evaluation {
        id,
        namespace: job.namespace.clone(),
        priority: job.priority,
        eval_type: job.job_type.clone(),
        triggered_by: triggered_by.into(),
        job_id: job.id.clone(),
        status: EVAL_STATUS_PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    }
}

#[cfg(test)]
mod tests;
