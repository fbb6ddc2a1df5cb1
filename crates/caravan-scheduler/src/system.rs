//! The system and sysbatch scheduler (Nomad's `scheduler_system.go`): one
//! allocation per feasible, ready node per group, each node checked alone.
//!
//! A node that is feasible but full may evict lower-priority allocations
//! when the scheduler configuration lets system (or sysbatch) jobs preempt
//! (see [`crate::preempt`]).
//!
//! Not modelled yet: system deployments and canaries, `max_parallel`
//! (every update happens in one evaluation).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, ALLOC_CLIENT_COMPLETE};
use caravan_api_types::eval::{EVAL_STATUS_BLOCKED, EVAL_STATUS_COMPLETE};
use caravan_api_types::job::{Job, JOB_TYPE_SYSBATCH};
use caravan_api_types::node::Node;

use crate::feasible::{in_datacenters, in_pool, node_ready};
use crate::generic::{blocked_eval, new_alloc, options, stopped_copy, taint_of, Context};
use crate::plan::{Plan, SchedulerResult};
use crate::reconcile::names::alloc_name;
use crate::reconcile::{
    self, tasks_updated, DESC_LOST, DESC_NODE_TAINTED, DESC_NOT_NEEDED, DESC_UPDATING,
};
use crate::rng::eval_seed;
use crate::select::Stack;
use crate::state::StateView;

struct SystemPlacement {
    group: String,
    node: String,
    previous: Option<Arc<Allocation>>,
}

fn same_version(alloc: &Allocation, job: &Job) -> bool {
    alloc.job.as_ref().map(|j| j.job_modify_index) == Some(job.job_modify_index)
}

/// Runs the system/sysbatch scheduler for one evaluation.
pub fn schedule(state: &dyn StateView, ctx: &mut Context<'_>) -> SchedulerResult {
    let eval = ctx.eval;
    let job = state.job(&eval.namespace, &eval.job_id);
    let allocs = state.allocs_by_job(&eval.namespace, &eval.job_id);
    let mut plan = Plan {
        eval_id: eval.id.clone(),
        priority: eval.priority,
        job: job.clone(),
        snapshot_index: state.index(),
        ..Plan::default()
    };
    let mut result = SchedulerResult::default();
    match job.filter(|j| !j.stop) {
        None => {
            let tainted = crate::generic::tainted_nodes(state, &allocs, ctx.now);
            let input = reconcile::Input {
                job: None,
                allocs: &allocs,
                tainted: &tainted,
                eval,
                now: ctx.now,
            };
            for stop in reconcile::reconcile(&input, ctx.ids).stops {
                plan.push_stop(stopped_copy(
                    &stop.alloc,
                    stop.description,
                    stop.lost,
                    &eval.id,
                ));
            }
        }
        Some(job) => place(state, ctx, &job, &allocs, &mut plan, &mut result),
    }
    let mut eval_out = eval.clone();
    eval_out.status = EVAL_STATUS_COMPLETE.to_string();
    eval_out.snapshot_index = state.index();
    if !result.failed_tg_allocs.is_empty() {
        eval_out.failed_tg_allocs = Some(result.failed_tg_allocs.clone());
    }
    eval_out.queued_allocations = Some(result.queued_allocations.clone());
    if eval.status == EVAL_STATUS_BLOCKED && !result.blocked_evals.is_empty() {
        eval_out.status = EVAL_STATUS_BLOCKED.to_string();
        result.blocked_evals.clear();
    }
    result.eval = eval_out;
    result.plan = plan;
    result
}

fn place(
    state: &dyn StateView,
    ctx: &mut Context<'_>,
    job: &Arc<Job>,
    allocs: &[Arc<Allocation>],
    plan: &mut Plan,
    result: &mut SchedulerResult,
) {
    let eval = ctx.eval;
    let sysbatch = job.job_type == JOB_TYPE_SYSBATCH;
    let nodes = state.nodes();
    let by_id: HashMap<&str, &Arc<Node>> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let seed = eval_seed(&eval.id, state.index());
    let mut stack = Stack::new(
        state,
        job.clone(),
        &nodes,
        HashSet::new(),
        seed,
        options(state),
    );
    let stop =
        |plan: &mut Plan, stack: &mut Stack<'_>, alloc: &Allocation, desc: &str, lost: bool| {
            if stack.stop(alloc) {
                plan.push_stop(stopped_copy(alloc, desc, lost, &eval.id));
            }
        };
    let mut placements = Vec::new();
    let mut has_allocs: HashSet<String> = HashSet::new();
    for group in &job.task_groups {
        result.queued_allocations.insert(group.name.clone(), 0);
        let mut served: HashSet<String> = HashSet::new();
        for alloc in allocs
            .iter()
            .filter(|a| a.task_group == group.name && !a.server_terminal())
        {
            let node = by_id.get(alloc.node_id.as_str()).copied();
            if alloc.client_terminal() {
                // Finished sysbatch work is not rerun until the job changes.
                if sysbatch
                    && alloc.client_status == ALLOC_CLIENT_COMPLETE
                    && same_version(alloc, job)
                {
                    served.insert(alloc.node_id.clone());
                }
                continue;
            }
            if served.contains(&alloc.node_id) {
                stop(plan, &mut stack, alloc, DESC_NOT_NEEDED, false); // a duplicate
                continue;
            }
            if let Some(taint) = taint_of(node.map(|n| n.as_ref()), ctx.now) {
                if taint.loses_allocs() {
                    stop(plan, &mut stack, alloc, DESC_LOST, true);
                } else if alloc.desired_transition.migrate == Some(true) {
                    stop(plan, &mut stack, alloc, DESC_NODE_TAINTED, false);
                } else {
                    served.insert(alloc.node_id.clone());
                }
                continue;
            }
            let Some(node) = node else {
                continue;
            };
            if alloc.desired_transition.migrate == Some(true) {
                stop(plan, &mut stack, alloc, DESC_NODE_TAINTED, false);
                continue;
            }
            if !node_ready(node) {
                served.insert(alloc.node_id.clone()); // ineligible: left alone
                continue;
            }
            if !in_datacenters(job, node)
                || !in_pool(job, node)
                || !stack.is_feasible(&group.name, node)
            {
                stop(plan, &mut stack, alloc, DESC_NOT_NEEDED, false);
                continue;
            }
            served.insert(alloc.node_id.clone());
            if same_version(alloc, job) {
                continue;
            }
            let destructive = match alloc
                .job
                .as_ref()
                .and_then(|old| Some((old, old.group(&group.name)?)))
            {
                Some((old_job, old_group)) => tasks_updated(old_job, old_group, job, group),
                None => true,
            };
            if destructive {
                // Stopped just before its replacement's selection, so
                // the replacement uses only this room (see the generic
                // scheduler's `place`).
                placements.push(SystemPlacement {
                    group: group.name.clone(),
                    node: alloc.node_id.clone(),
                    previous: Some(alloc.clone()),
                });
            } else {
                let mut updated = (**alloc).clone();
                updated.job = Some(job.clone());
                updated.eval_id = eval.id.clone();
                plan.push_alloc(updated);
            }
        }
        if !served.is_empty() {
            has_allocs.insert(group.name.clone());
        }
        for node in stack.ready_nodes() {
            if !served.contains(&node.id) {
                placements.push(SystemPlacement {
                    group: group.name.clone(),
                    node: node.id.clone(),
                    previous: None,
                });
            }
        }
    }
    // Groups left out of the job: stop their allocations.
    for alloc in allocs
        .iter()
        .filter(|a| !a.terminal() && job.group(&a.task_group).is_none())
    {
        stop(plan, &mut stack, alloc, DESC_NOT_NEEDED, false);
    }
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    let mut filtered = BTreeMap::new();
    for placement in placements {
        let Some(group) = job.group(&placement.group) else {
            continue;
        };
        if let Some(previous) = &placement.previous {
            stop(plan, &mut stack, previous, DESC_UPDATING, false);
        }
        let (chosen, metrics) = stack.select_node(group, &placement.node);
        match chosen {
            Some(mut chosen) => {
                let name = alloc_name(&job.id, &group.name, 0);
                let victims = std::mem::take(&mut chosen.preempted);
                let mut alloc = new_alloc(job, &group.name, &name, chosen, metrics, eval, ctx.ids);
                crate::preempt::record(plan, &mut alloc, victims);
                if let Some(previous) = &placement.previous {
                    alloc.previous_allocation = previous.id.clone();
                }
                *placed.entry(group.name.clone()).or_insert(0) += 1;
                plan.push_alloc(alloc);
            }
            // Filtered: the node is not for this job; its old allocation
            // (if any) stays stopped.
            None if metrics.nodes_exhausted == 0 => {
                filtered.insert(group.name.clone(), metrics);
            }
            None => {
                if let Some(previous) = &placement.previous {
                    if plan.pop_stop(&previous.node_id, &previous.id).is_some() {
                        stack.unstop(previous);
                    }
                }
                *result
                    .queued_allocations
                    .entry(group.name.clone())
                    .or_insert(0) += 1;
                match result.failed_tg_allocs.get_mut(&group.name) {
                    Some(first) => first.coalesced_failures += 1,
                    None => {
                        result.failed_tg_allocs.insert(group.name.clone(), metrics);
                    }
                }
                let escaped = stack.feasibility().escaped();
                let classes = Some(stack.feasibility().class_eligibility());
                let mut blocked = blocked_eval(eval, job, state.index(), classes, escaped, ctx.ids);
                blocked.node_id = placement.node.clone();
                result.blocked_evals.push(blocked);
            }
        }
    }
    // Filter metrics only count as a failure when nothing of the group
    // was placed anywhere.
    for (group, metrics) in filtered {
        if !placed.contains_key(&group)
            && !has_allocs.contains(&group)
            && !result.failed_tg_allocs.contains_key(&group)
        {
            result.failed_tg_allocs.insert(group, metrics);
        }
    }
}
