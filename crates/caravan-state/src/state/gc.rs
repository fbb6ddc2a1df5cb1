//! Garbage collection's writes: removing what the leader found old and
//! finished ([`GcCollect`]), and counting job summaries again.
//!
//! A collection is decided on a snapshot and applied later, perhaps after
//! other writes: everything it names is removed only if it is unchanged
//! since (same `ModifyIndex`) and still finished, so a stale decision can
//! leave something for the next pass but never removes live state.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::ALLOC_CLIENT_RUNNING;
use caravan_api_types::job::{JobSummary, TaskGroupSummary};
use caravan_api_types::node::NODE_STATUS_DOWN;

use super::jobs::{counter, ns_key};
use super::{State, Table};
use crate::command::CommandResult;
use crate::job_commands::{Collected, GcCollect, JobCollected};
use crate::table::Touched;

impl State {
    pub(super) fn apply_gc_collect(
        &mut self,
        collect: &GcCollect,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let mut refresh = BTreeSet::new();
        let mut removed = Removed::default();
        for job in &collect.jobs {
            self.collect_job(job, index, touched, &mut refresh, &mut removed);
        }
        for node in &collect.nodes {
            let collectable = self.nodes.get(&node.id).is_some_and(|stored| {
                stored.modify_index == node.modify_index && stored.status == NODE_STATUS_DOWN
            }) && self.allocs_by_node(&node.id).all(|alloc| alloc.terminal());
            if collectable {
                self.nodes.remove(&node.id, touched);
                removed.nodes = true;
            }
        }
        for token in &collect.tokens {
            let unchanged = self
                .acl_tokens
                .get(&token.id)
                .is_some_and(|stored| stored.modify_index == token.modify_index);
            if unchanged {
                self.acl_tokens.remove(&token.id, touched);
                removed.tokens = true;
            }
        }
        for (table, changed) in [
            (Table::Evals, removed.evals),
            (Table::Allocs, removed.allocs),
            (Table::Nodes, removed.nodes),
            (Table::AclTokens, removed.tokens),
        ] {
            if changed {
                self.touch(table, index, touched);
            }
        }
        self.refresh_job_statuses_after_delete(&refresh, index, touched);
        CommandResult::Done
    }

    /// Removes what `job` names, if the job is as it was when decided.
    fn collect_job(
        &mut self,
        job: &JobCollected,
        index: u64,
        touched: &mut Touched,
        refresh: &mut BTreeSet<String>,
        removed: &mut Removed,
    ) {
        let key = ns_key(&job.namespace, &job.job_id);
        let stored = self.jobs.get(&key).cloned();
        if stored.as_ref().map(|stored| stored.modify_index) != job.job_modify_index {
            return;
        }
        for alloc in &job.allocs {
            if self.allocs.get(&alloc.id).is_some_and(|stored| {
                unchanged(alloc, stored.modify_index)
                    && stored.terminal()
                    && stored.client_status != ALLOC_CLIENT_RUNNING
            }) {
                self.remove_alloc(&alloc.id, index, touched);
                removed.allocs = true;
            }
        }
        for eval in &job.evals {
            if self
                .evals
                .get(&eval.id)
                .is_some_and(|stored| unchanged(eval, stored.modify_index) && stored.terminal())
            {
                self.evals.remove(&eval.id, touched);
                removed.evals = true;
            }
        }
        let Some(stored) = stored else {
            return;
        };
        let emptied = self
            .allocs_by_job(&job.namespace, &job.job_id)
            .next()
            .is_none()
            && self
                .evals_by_job(&job.namespace, &job.job_id)
                .next()
                .is_none();
        if job.purge && emptied {
            self.purge_job(&stored, index, touched);
        } else {
            refresh.insert(key);
        }
    }

    /// Nomad's summary reconciliation: every job's counts by client status
    /// from its allocations as they are now (queued counts, which come
    /// from evaluations, and children stay).
    pub(super) fn apply_summaries_reconcile(
        &mut self,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        let jobs: Vec<_> = self.jobs.values().cloned().collect();
        for job in jobs {
            let key = ns_key(&job.namespace, &job.id);
            let mut summary = self.job_summaries.get(&key).cloned().unwrap_or(JobSummary {
                create_index: index,
                ..JobSummary::for_job(&job)
            });
            for group in summary.summary.values_mut() {
                *group = TaskGroupSummary {
                    queued: group.queued,
                    ..TaskGroupSummary::default()
                };
            }
            for group in &job.task_groups {
                summary.summary.entry(group.name.clone()).or_default();
            }
            // Allocations of an earlier job of the same ID (purged and
            // registered again) are not this job's (Nomad's #2304).
            let allocs: Vec<_> = self
                .allocs_by_job(&job.namespace, &job.id)
                .filter(|alloc| {
                    alloc
                        .job
                        .as_ref()
                        .is_none_or(|own| own.create_index == job.create_index)
                })
                .map(Arc::clone)
                .collect();
            for alloc in allocs {
                let group = summary.summary.entry(alloc.task_group.clone()).or_default();
                if let Some(count) = counter(group, &alloc.client_status) {
                    *count += 1;
                }
            }
            summary.modify_index = index;
            self.job_summaries.insert(key, summary, touched);
        }
        self.touch(Table::JobSummaries, index, touched);
        CommandResult::Done
    }
}

/// The tables a collection changed.
#[derive(Default)]
struct Removed {
    evals: bool,
    allocs: bool,
    nodes: bool,
    tokens: bool,
}

fn unchanged(collected: &Collected, modify_index: u64) -> bool {
    collected.modify_index == modify_index
}
