//! The service and batch scheduler (Nomad's `generic_sched.go`), one
//! attempt: reconcile, then place what is missing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use caravan_api_types::alloc::{
    Allocation, RescheduleTracker, ALLOC_CLIENT_LOST, ALLOC_CLIENT_PENDING, ALLOC_DESIRED_RUN,
    ALLOC_DESIRED_STOP,
};
use caravan_api_types::eval::{
    AllocMetric, Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_COMPLETE, TRIGGER_QUEUED_ALLOCS,
};
use caravan_api_types::job::Job;
use caravan_api_types::node::{Node, NODE_STATUS_DISCONNECTED, NODE_STATUS_DOWN};

use crate::ids::IdGenerator;
use crate::plan::{Plan, SchedulerResult};
use crate::rank::Algorithm;
use crate::reconcile::{self, reschedule, Placement, PlacementKind, Stop, Taint};
use crate::rng::eval_seed;
use crate::select::{Chosen, Stack, StackOptions};
use crate::state::StateView;

pub const BLOCKED_DESCRIPTION: &str = "created to place remaining allocations";

/// Everything a scheduler run needs besides the state.
pub struct Context<'a> {
    pub eval: &'a Evaluation,
    /// Unix nanoseconds: stamps reschedule events and decides which
    /// delayed reschedules are due.
    pub now: i64,
    pub ids: &'a mut dyn IdGenerator,
}

/// Why a node cannot keep its allocations, if it cannot, at `now` (Unix
/// nanoseconds: whether a drain's deadline has passed).
pub fn taint_of(node: Option<&Node>, now: i64) -> Option<Taint> {
    match node {
        None => Some(Taint::Gone),
        Some(node) if node.status == NODE_STATUS_DOWN => Some(Taint::Down),
        Some(node) if node.status == NODE_STATUS_DISCONNECTED => Some(Taint::Disconnected),
        Some(node) => node.drain_strategy.as_ref().map(|drain| {
            let passed = drain.deadline < 0
                || drain
                    .force_deadline
                    .and_then(|at| at.timestamp_nanos_opt())
                    .is_some_and(|at| at <= now);
            if passed {
                Taint::DrainDeadline
            } else {
                Taint::Draining
            }
        }),
    }
}

pub(crate) fn tainted_nodes(
    state: &dyn StateView,
    allocs: &[Arc<Allocation>],
    now: i64,
) -> HashMap<String, Taint> {
    let mut tainted = HashMap::new();
    let mut seen = HashSet::new();
    for alloc in allocs {
        if alloc.node_id.is_empty() || !seen.insert(alloc.node_id.as_str()) {
            continue;
        }
        if let Some(taint) = taint_of(state.node(&alloc.node_id).as_deref(), now) {
            tainted.insert(alloc.node_id.clone(), taint);
        }
    }
    tainted
}

/// A copy of `alloc` told to stop.
pub fn stopped_copy(
    alloc: &Allocation,
    description: &str,
    lost: bool,
    eval_id: &str,
) -> Allocation {
    let mut stopped = alloc.clone();
    stopped.desired_status = ALLOC_DESIRED_STOP.to_string();
    stopped.desired_description = description.to_string();
    if lost {
        stopped.client_status = ALLOC_CLIENT_LOST.to_string();
    }
    stopped.eval_id = eval_id.to_string();
    stopped
}

pub(crate) fn options(state: &dyn StateView) -> StackOptions {
    let config = state.scheduler_config();
    StackOptions {
        algorithm: Algorithm::from_config(&config.scheduler_algorithm),
        memory_oversubscription: config.memory_oversubscription_enabled,
        node_limit_for_feasibility_checks: config.node_limit_for_feasibility_checks,
    }
}

/// A new allocation on the chosen node.
pub(crate) fn new_alloc(
    job: &Arc<Job>,
    group: &str,
    name: &str,
    chosen: Chosen,
    metrics: AllocMetric,
    eval: &Evaluation,
    ids: &mut dyn IdGenerator,
) -> Allocation {
    Allocation {
        id: ids.next_id(),
        namespace: job.namespace.clone(),
        eval_id: eval.id.clone(),
        name: name.to_string(),
        node_id: chosen.node.id.clone(),
        node_name: chosen.node.name.clone(),
        job_id: job.id.clone(),
        job: Some(job.clone()),
        task_group: group.to_string(),
        allocated_resources: Some(chosen.resources),
        metrics: Some(metrics),
        desired_status: ALLOC_DESIRED_RUN.to_string(),
        client_status: ALLOC_CLIENT_PENDING.to_string(),
        ..Allocation::default()
    }
}

/// The blocked eval for what could not be placed.
pub(crate) fn blocked_eval(
    eval: &Evaluation,
    job: &Job,
    snapshot_index: u64,
    class_eligibility: Option<BTreeMap<String, bool>>,
    escaped: bool,
    ids: &mut dyn IdGenerator,
) -> Evaluation {
    Evaluation {
        id: ids.next_id(),
        namespace: job.namespace.clone(),
        priority: eval.priority,
        eval_type: eval.eval_type.clone(),
        triggered_by: TRIGGER_QUEUED_ALLOCS.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: EVAL_STATUS_BLOCKED.to_string(),
        status_description: BLOCKED_DESCRIPTION.to_string(),
        previous_eval: eval.id.clone(),
        class_eligibility: if escaped { None } else { class_eligibility },
        escaped_computed_class: escaped,
        snapshot_index,
        ..Evaluation::default()
    }
}

/// Runs the service/batch scheduler for one evaluation.
pub fn schedule(state: &dyn StateView, ctx: &mut Context<'_>) -> SchedulerResult {
    let eval = ctx.eval;
    let job = state.job(&eval.namespace, &eval.job_id);
    let allocs = state.allocs_by_job(&eval.namespace, &eval.job_id);
    let tainted = tainted_nodes(state, &allocs, ctx.now);
    let reconciled = reconcile::reconcile(
        &reconcile::Input {
            job: job.as_ref(),
            allocs: &allocs,
            tainted: &tainted,
            eval,
            now: ctx.now,
        },
        ctx.ids,
    );
    let mut plan = Plan {
        eval_id: eval.id.clone(),
        priority: eval.priority,
        job: job.clone(),
        all_at_once: job.as_ref().is_some_and(|j| j.all_at_once),
        snapshot_index: state.index(),
        ..Plan::default()
    };
    let mut result = SchedulerResult::default();
    let mut stopped: HashSet<String> = HashSet::new();
    for Stop {
        alloc,
        description,
        lost,
    } in &reconciled.stops
    {
        if stopped.insert(alloc.id.clone()) {
            plan.push_stop(stopped_copy(alloc, description, *lost, &eval.id));
        }
    }
    for alloc in reconciled
        .inplace
        .into_iter()
        .chain(reconciled.attribute_updates)
    {
        plan.push_alloc(alloc);
    }
    result.followup_evals = reconciled.followup_evals;
    let live_job = job.filter(|j| !j.stop);
    if let Some(job) = &live_job {
        place(
            state,
            ctx,
            job,
            reconciled.placements,
            stopped,
            &mut plan,
            &mut result,
        );
    }
    let mut eval_out = eval.clone();
    eval_out.status = EVAL_STATUS_COMPLETE.to_string();
    eval_out.snapshot_index = state.index();
    if !result.failed_tg_allocs.is_empty() {
        eval_out.failed_tg_allocs = Some(result.failed_tg_allocs.clone());
    }
    eval_out.queued_allocations = Some(result.queued_allocations.clone());
    if let Some(blocked) = result.blocked_evals.first() {
        eval_out.blocked_eval = blocked.id.clone();
    }
    if eval.status == EVAL_STATUS_BLOCKED && !result.failed_tg_allocs.is_empty() {
        // A blocked eval that still cannot place is reblocked, not copied.
        eval_out.status = EVAL_STATUS_BLOCKED.to_string();
    }
    result.eval = eval_out;
    result.plan = plan;
    result
}

fn place(
    state: &dyn StateView,
    ctx: &mut Context<'_>,
    job: &Arc<Job>,
    placements: Vec<Placement>,
    stopped: HashSet<String>,
    plan: &mut Plan,
    result: &mut SchedulerResult,
) {
    let eval = ctx.eval;
    for group in &job.task_groups {
        result.queued_allocations.insert(group.name.clone(), 0);
    }
    // Destructive updates first. Each one's old allocation is stopped just
    // before its own selection (Nomad's computePlacements), so it uses only
    // that room and free room: a later replacement that fails takes its
    // stop back with no other placement having used the room.
    let (mut ordered, rest): (Vec<_>, Vec<_>) = placements
        .into_iter()
        .partition(|p| p.kind == PlacementKind::Destructive);
    ordered.extend(rest);
    let nodes = state.nodes();
    let seed = eval_seed(&eval.id, state.index());
    let mut stack = Stack::new(state, job.clone(), &nodes, stopped, seed, options(state));
    for placement in ordered {
        let Some(group) = job.group(&placement.group) else {
            continue;
        };
        if let Some(failed) = result.failed_tg_allocs.get_mut(&group.name) {
            failed.coalesced_failures += 1;
            *result
                .queued_allocations
                .entry(group.name.clone())
                .or_insert(0) += 1;
            withdraw(&placement, false, plan, &mut stack);
            continue;
        }
        let stopped_here = stop_previous(&placement, &eval.id, plan, &mut stack);
        let rescheduling = placement.kind == PlacementKind::Reschedule;
        let penalty: HashSet<String> = match (&placement.previous, rescheduling) {
            (Some(previous), true) => reschedule::penalty_nodes(previous).into_iter().collect(),
            _ => HashSet::new(),
        };
        let (chosen, metrics) = stack.select(group, &penalty);
        let Some(mut chosen) = chosen else {
            result.failed_tg_allocs.insert(group.name.clone(), metrics);
            *result
                .queued_allocations
                .entry(group.name.clone())
                .or_insert(0) += 1;
            withdraw(&placement, stopped_here, plan, &mut stack);
            continue;
        };
        let victims = std::mem::take(&mut chosen.preempted);
        let mut alloc = new_alloc(
            job,
            &group.name,
            &placement.name,
            chosen,
            metrics,
            eval,
            ctx.ids,
        );
        crate::preempt::record(plan, &mut alloc, victims);
        if let Some(previous) = &placement.previous {
            alloc.previous_allocation = previous.id.clone();
            if rescheduling {
                if let Some(policy) = &group.reschedule_policy {
                    alloc.reschedule_tracker = Some(reschedule::tracker_for_replacement(
                        policy, previous, ctx.now,
                    ));
                }
            }
            // The stopped previous allocation points at its replacement.
            if let Some(stops) = plan.node_update.get_mut(&previous.node_id) {
                if let Some(stop) = stops.iter_mut().find(|s| s.id == previous.id) {
                    stop.next_allocation = alloc.id.clone();
                }
            }
        }
        plan.push_alloc(alloc);
    }
    if !result.failed_tg_allocs.is_empty() && eval.status != EVAL_STATUS_BLOCKED {
        let feasibility = stack.feasibility();
        let escaped = feasibility.escaped();
        let classes = Some(feasibility.class_eligibility());
        let mut blocked = blocked_eval(eval, job, state.index(), classes, escaped, ctx.ids);
        // The blocked eval says what it waits for (as Nomad's does).
        blocked.failed_tg_allocs = Some(result.failed_tg_allocs.clone());
        result.blocked_evals.push(blocked);
    }
}

/// Stops the allocation `placement` replaces, if it asks to, before its
/// selection. Returns whether this placement pushed the stop: one the
/// reconciler made already is not this placement's to withdraw.
fn stop_previous(
    placement: &Placement,
    eval_id: &str,
    plan: &mut Plan,
    stack: &mut Stack<'_>,
) -> bool {
    let (Some(previous), Some(description)) = (&placement.previous, placement.stop_previous) else {
        return false;
    };
    if !stack.stop(previous) {
        return false;
    }
    plan.push_stop(stopped_copy(previous, description, false, eval_id));
    true
}

/// A replacement that could not be placed: its previous allocation is not
/// stopped after all (if `stopped_here`, the stop this placement pushed is
/// taken back); a failed reschedule records "no placement" so the blocked
/// eval retries it.
fn withdraw(placement: &Placement, stopped_here: bool, plan: &mut Plan, stack: &mut Stack<'_>) {
    let (Some(previous), Some(_)) = (&placement.previous, placement.stop_previous) else {
        return;
    };
    if stopped_here && plan.pop_stop(&previous.node_id, &previous.id).is_some() {
        stack.unstop(previous);
    }
    if placement.kind == PlacementKind::Reschedule {
        let mut kept = (**previous).clone();
        let tracker = kept
            .reschedule_tracker
            .get_or_insert_with(RescheduleTracker::default);
        tracker.last_reschedule = "no placement".to_string();
        plan.push_alloc(kept);
    }
}
