//! The plan applier (Nomad's `plan_apply.go`): the one place plans become
//! Raft writes. Each plan is checked node by node against the latest state
//! with the same [`caravan_scheduler::fit`] the scheduler used, so two
//! workers planning on the same snapshot can never overcommit a node; a
//! node that no longer fits, or may no longer take new allocations, is
//! left out with its stops and the worker plans again.
//!
//! Plans are applied one at a time (a lock held across the check and the
//! write), which is what makes the check against "the latest state" true.
//!
//! A preemption is a stop like any other here (`DesiredStatus: evict`,
//! with `PreemptedByAllocation`): it frees its room for the check and goes
//! with its node. Evictions of allocations that ended meanwhile are
//! dropped, and each job that loses allocations gets one `preemption`
//! evaluation in the plan's own write, so it is placed again (or blocked)
//! by its own scheduler run.

use std::collections::{BTreeMap, BTreeSet};

use caravan_api_types::alloc::{Allocation, ALLOC_CLIENT_LOST};
use caravan_api_types::eval::{Evaluation, EVAL_STATUS_PENDING, TRIGGER_PREEMPTION};
use caravan_api_types::node::{Node, INELIGIBLE, NODE_STATUS_READY};
use caravan_scheduler::preempt::is_preemption;
use caravan_scheduler::Plan;
use caravan_state::job_commands::{AllocStop, PlanResult};
use caravan_state::{Command, State};

/// What a plan check decided.
#[derive(Debug, Default)]
pub struct CheckedPlan {
    /// The allocations that fit, ready to commit.
    pub result: PlanResult,
    /// Nodes whose placements and stops were refused (the worker must
    /// plan again).
    pub refused_nodes: Vec<String>,
}

/// Why `node` may take no new allocation, if it may not (Nomad's
/// `evaluateNodePlan`; a drain marks the node ineligible).
fn closed_to_new(node: &Node) -> Option<&'static str> {
    if node.status != NODE_STATUS_READY {
        Some("node is not ready for placements")
    } else if node.scheduling_eligibility == INELIGIBLE {
        Some("node is not eligible")
    } else {
        None
    }
}

/// Whether `node` holds its live allocations (less those the plan stops
/// or updates) plus the plan's `placed` ones.
fn fits(state: &State, node: &Node, stopping: &BTreeSet<&str>, placed: &[Allocation]) -> bool {
    let placing: BTreeSet<&str> = placed.iter().map(|alloc| alloc.id.as_str()).collect();
    // What stays on the node: its live allocations, less those this
    // plan stops or replaces in place.
    // Borrowed, not cloned: an allocation carries its metrics and task
    // states, and a plan of 10,000 placements checks every one.
    let mut existing: Vec<&Allocation> = state
        .allocs_by_node(&node.id)
        .filter(|alloc| !alloc.terminal())
        .filter(|alloc| !stopping.contains(alloc.id.as_str()))
        .filter(|alloc| !placing.contains(alloc.id.as_str()))
        .map(|alloc| alloc.as_ref())
        .collect();
    for alloc in placed {
        // A finished allocation holds nothing: updating one (its
        // follow-up eval, a reschedule tracker's "no placement") needs
        // no room, as Nomad's `AllocsFit` skips client-terminal ones.
        if alloc.terminal() {
            continue;
        }
        let Some(resources) = &alloc.allocated_resources else {
            continue;
        };
        if let Err(exhausted) = caravan_scheduler::fit(node, &existing, resources) {
            tracing::debug!(node = %node.id, %exhausted, "plan refused on a node");
            return false;
        }
        existing.push(alloc);
    }
    true
}

/// Checks every node of `plan` against `state` and keeps what fits.
pub fn check(state: &State, plan: &Plan, now: i64) -> CheckedPlan {
    check_owned(state, plan.clone(), now)
}

/// [`check`], taking the plan: what fits moves into the result instead
/// of being copied (a plan of 10,000 placements is 10,000 allocations
/// with their metrics).
pub fn check_owned(state: &State, mut plan: Plan, now: i64) -> CheckedPlan {
    let (accepted, refused_nodes) = decide(state, &plan);
    let mut checked = CheckedPlan {
        refused_nodes,
        ..CheckedPlan::default()
    };
    let kept = kept_stops(state, &plan, &checked.refused_nodes);
    checked.result.stops = kept.iter().map(|alloc| alloc_stop(alloc)).collect();
    checked.result.evals = preemption_evals(state, &kept, now);
    for node_id in accepted {
        if let Some(placed) = plan.node_allocation.remove(&node_id) {
            checked
                .result
                .allocs
                .extend(placed.into_iter().map(|alloc| Allocation {
                    // The plan carries the job once.
                    job: None,
                    ..alloc
                }));
        }
    }
    checked.result.job = plan.job.take();
    checked.result.now = now;
    checked
}

/// IDs of the allocations `plan` places on `refused` nodes.
fn placed_on<'p>(plan: &'p Plan, refused: &[String]) -> BTreeSet<&'p str> {
    refused
        .iter()
        .filter_map(|node_id| plan.node_allocation.get(node_id))
        .flatten()
        .map(|alloc| alloc.id.as_str())
        .collect()
}

/// The plan's nodes that fit and those refused, in node order. A stop
/// whose replacement is placed on a refused node does not happen (the old
/// allocation keeps running), so the room it would free is not counted:
/// nodes are checked again until the refusals settle (they only grow, so
/// this ends; a plan with no refusal is checked once).
fn decide(state: &State, plan: &Plan) -> (Vec<String>, Vec<String>) {
    let mut refused: Vec<String> = Vec::new();
    loop {
        let waiting = placed_on(plan, &refused);
        let stopping: BTreeSet<&str> = plan
            .stops()
            .filter(|alloc| !waiting.contains(alloc.next_allocation.as_str()))
            .map(|alloc| alloc.id.as_str())
            .collect();
        let (accepted, now_refused) = decide_once(state, plan, &stopping);
        if now_refused == refused {
            return (accepted, now_refused);
        }
        refused = now_refused;
    }
}

fn decide_once(
    state: &State,
    plan: &Plan,
    stopping: &BTreeSet<&str>,
) -> (Vec<String>, Vec<String>) {
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (node_id, placed) in &plan.node_allocation {
        let node = state.node(node_id);
        let closed = match node {
            None => Some("node does not exist"),
            Some(node) => closed_to_new(node),
        };
        if let Some(reason) = closed {
            // Only allocations new to the node are refused: updating one it
            // holds (in place, or annotating a finished one) starts nothing,
            // as Nomad's `AllocSubset` lets through on an ineligible node.
            // Nomad refuses even those on a node that is not ready or gone,
            // but the scheduler would make the same update again, so the
            // eval would only spend its attempts.
            let held: BTreeSet<&str> = state
                .allocs_by_node(node_id)
                .map(|alloc| alloc.id.as_str())
                .collect();
            let new = |alloc: &Allocation| !alloc.terminal() && !held.contains(alloc.id.as_str());
            if placed.iter().any(new) {
                tracing::debug!(node = %node_id, reason, "plan refused on a node");
                refused.push(node_id.clone());
                continue;
            }
        }
        // A node that is gone holds nothing to check against; only updates
        // of its allocations got this far.
        if node.is_none_or(|node| fits(state, node, stopping, placed)) {
            accepted.push(node_id.clone());
        } else {
            refused.push(node_id.clone());
        }
    }
    (accepted, refused)
}

/// The plan's stops that are committed.
fn kept_stops<'p>(state: &State, plan: &'p Plan, refused_nodes: &[String]) -> Vec<&'p Allocation> {
    // A refused node keeps its allocations as they are: its stops go with
    // its placements (a destructive update's stop must not land while its
    // replacement on the same node is refused, nor an eviction while its
    // preemptor is), as Nomad drops a refused node's updates. Stops on
    // nodes without placements need no check and are always committed.
    let refused: BTreeSet<&str> = refused_nodes.iter().map(String::as_str).collect();
    // A stop whose replacement is placed on a refused node waits for it
    // too (a migration or destructive update moving to another node): the
    // old allocation keeps running rather than end with no replacement.
    let refused_placements = placed_on(plan, refused_nodes);
    plan.node_update
        .iter()
        .filter(|(node_id, _)| !refused.contains(node_id.as_str()))
        .flat_map(|(_, stops)| stops)
        .filter(|alloc| !refused_placements.contains(alloc.next_allocation.as_str()))
        // An eviction of an allocation that ended (or is gone) meanwhile
        // would only rewrite its end as a preemption and re-place its job.
        .filter(|alloc| {
            !is_preemption(alloc)
                || state
                    .alloc(&alloc.id)
                    .is_some_and(|stored| !stored.terminal())
        })
        .collect()
}

fn alloc_stop(alloc: &Allocation) -> AllocStop {
    AllocStop {
        id: alloc.id.clone(),
        desired_status: alloc.desired_status.clone(),
        desired_description: alloc.desired_description.clone(),
        client_status: (alloc.client_status == ALLOC_CLIENT_LOST)
            .then(|| alloc.client_status.clone()),
        followup_eval_id: (!alloc.followup_eval_id.is_empty())
            .then(|| alloc.followup_eval_id.clone()),
        preempted_by_allocation: (!alloc.preempted_by_allocation.is_empty())
            .then(|| alloc.preempted_by_allocation.clone()),
        next_allocation: (!alloc.next_allocation.is_empty()).then(|| alloc.next_allocation.clone()),
    }
}

/// One pending `preemption` evaluation per job that loses allocations to
/// a committed eviction, at that job's priority and type. A job that is
/// gone has nothing to place again.
fn preemption_evals(state: &State, kept: &[&Allocation], now: i64) -> Vec<Evaluation> {
    let mut by_job: BTreeMap<(&str, &str), Evaluation> = BTreeMap::new();
    for alloc in kept.iter().filter(|alloc| is_preemption(alloc)) {
        let key = (alloc.namespace.as_str(), alloc.job_id.as_str());
        if by_job.contains_key(&key) {
            continue;
        }
        let Some(job) = state
            .job(&alloc.namespace, &alloc.job_id)
            .or(alloc.job.as_ref())
        else {
            continue;
        };
        by_job.insert(
            key,
            Evaluation {
                id: uuid::Uuid::new_v4().to_string(),
                namespace: alloc.namespace.clone(),
                priority: job.priority,
                eval_type: job.job_type.clone(),
                triggered_by: TRIGGER_PREEMPTION.into(),
                job_id: alloc.job_id.clone(),
                job_modify_index: job.job_modify_index,
                status: EVAL_STATUS_PENDING.into(),
                create_time: now,
                modify_time: now,
                ..Evaluation::default()
            },
        );
    }
    by_job.into_values().collect()
}

/// The write that commits a checked plan (with the evaluations to store
/// alongside it).
pub fn command(mut checked: PlanResult, evals: Vec<Evaluation>) -> Command {
    // The caller's evaluations (the planned one's own update first), then
    // those the check made for the preempted jobs.
    let preempted = std::mem::replace(&mut checked.evals, evals);
    checked.evals.extend(preempted);
    Command::PlanApply(Box::new(checked))
}

/// Shares the plan applier between workers: one plan at a time.
#[derive(Default)]
pub struct PlanApplier {
    lock: tokio::sync::Mutex<()>,
}

impl PlanApplier {
    pub async fn serialize(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

#[cfg(test)]
#[path = "plan_apply_tests.rs"]
mod tests;
