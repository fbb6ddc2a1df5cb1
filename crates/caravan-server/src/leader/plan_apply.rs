//! The plan applier (Nomad's `plan_apply.go`): the one place plans become
//! Raft writes. Each plan is checked node by node against the latest state
//! with the same [`caravan_scheduler::fit`] the scheduler used, so two
//! workers planning on the same snapshot can never overcommit a node; a
//! node that no longer fits is left out and the worker plans again.
//!
//! Plans are applied one at a time (a lock held across the check and the
//! write), which is what makes the check against "the latest state" true.

use std::collections::BTreeSet;

use caravan_api_types::alloc::Allocation;
use caravan_scheduler::Plan;
use caravan_state::job_commands::{AllocStop, PlanResult};
use caravan_state::{Command, State};

/// What a plan check decided.
#[derive(Debug, Default)]
pub struct CheckedPlan {
    /// The allocations that fit, ready to commit.
    pub result: PlanResult,
    /// Nodes whose placements were refused (the worker must plan again).
    pub refused_nodes: Vec<String>,
}

/// Checks every node of `plan` against `state` and keeps what fits.
pub fn check(state: &State, plan: &Plan, now: i64) -> CheckedPlan {
    let stopping: BTreeSet<&str> = plan.stops().map(|alloc| alloc.id.as_str()).collect();
    let mut checked = CheckedPlan::default();
    for (node_id, placed) in &plan.node_allocation {
        let Some(node) = state.node(node_id) else {
            checked.refused_nodes.push(node_id.clone());
            continue;
        };
        let placing: BTreeSet<&str> = placed.iter().map(|alloc| alloc.id.as_str()).collect();
        // What stays on the node: its live allocations, less those this
        // plan stops or replaces in place.
        let mut existing: Vec<Allocation> = state
            .allocs_by_node(node_id)
            .filter(|alloc| !alloc.terminal())
            .filter(|alloc| !stopping.contains(alloc.id.as_str()))
            .filter(|alloc| !placing.contains(alloc.id.as_str()))
            .map(|alloc| (**alloc).clone())
            .collect();
        let mut fits = true;
        for alloc in placed {
            let Some(resources) = &alloc.allocated_resources else {
                continue;
            };
            let refs: Vec<&Allocation> = existing.iter().collect();
            if let Err(exhausted) = caravan_scheduler::fit(node, &refs, resources) {
                tracing::debug!(node = %node_id, %exhausted, "plan refused on a node");
                fits = false;
                break;
            }
            existing.push(alloc.clone());
        }
        if fits {
            checked
                .result
                .allocs
                .extend(placed.iter().map(|alloc| Allocation {
                    // The plan carries the job once.
                    job: None,
                    ..alloc.clone()
                }));
        } else {
            checked.refused_nodes.push(node_id.clone());
        }
    }
    checked.result.stops = plan
        .stops()
        .map(|alloc| AllocStop {
            id: alloc.id.clone(),
            desired_status: alloc.desired_status.clone(),
            desired_description: alloc.desired_description.clone(),
            client_status: (alloc.client_status == caravan_api_types::alloc::ALLOC_CLIENT_LOST)
                .then(|| alloc.client_status.clone()),
            followup_eval_id: (!alloc.followup_eval_id.is_empty())
                .then(|| alloc.followup_eval_id.clone()),
            preempted_by_allocation: (!alloc.preempted_by_allocation.is_empty())
                .then(|| alloc.preempted_by_allocation.clone()),
            next_allocation: (!alloc.next_allocation.is_empty())
                .then(|| alloc.next_allocation.clone()),
        })
        .collect();
    checked.result.job = plan.job.clone();
    checked.result.now = now;
    checked
}

/// The write that commits a checked plan (with the evaluations to store
/// alongside it).
pub fn command(
    mut checked: PlanResult,
    evals: Vec<caravan_api_types::eval::Evaluation>,
) -> Command {
    checked.evals = evals;
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
