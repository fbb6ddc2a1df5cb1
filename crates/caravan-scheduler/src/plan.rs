//! What a scheduler run produces: the plan to commit, and how the
//! evaluation ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::{AllocMetric, Evaluation};
use caravan_api_types::job::Job;

/// Changes to commit, per node. The server's plan applier checks each node
/// with [`crate::fit`] before committing it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub eval_id: String,
    pub priority: i64,
    /// The job the allocations run (`None` when the job is gone).
    pub job: Option<Arc<Job>>,
    pub all_at_once: bool,
    /// The snapshot the plan was made against.
    pub snapshot_index: u64,
    /// Allocations to stop or evict, with `DesiredStatus`,
    /// `DesiredDescription` and, for lost ones, `ClientStatus: lost` set.
    pub node_update: BTreeMap<String, Vec<Allocation>>,
    /// New allocations, in-place updates, and attribute updates
    /// (`FollowupEvalID`, a failed reschedule's tracker) of existing ones.
    pub node_allocation: BTreeMap<String, Vec<Allocation>>,
}

impl Plan {
    pub fn is_no_op(&self) -> bool {
        self.node_update.is_empty() && self.node_allocation.is_empty()
    }

    pub fn push_stop(&mut self, alloc: Allocation) {
        push(&mut self.node_update, alloc);
    }

    pub fn push_alloc(&mut self, alloc: Allocation) {
        push(&mut self.node_allocation, alloc);
    }

    /// Takes back a stop (a replacement that could not be placed).
    pub fn pop_stop(&mut self, node_id: &str, alloc_id: &str) -> Option<Allocation> {
        let list = self.node_update.get_mut(node_id)?;
        let at = list.iter().position(|a| a.id == alloc_id)?;
        let alloc = list.remove(at);
        if list.is_empty() {
            self.node_update.remove(node_id);
        }
        Some(alloc)
    }

    pub fn stops(&self) -> impl Iterator<Item = &Allocation> {
        self.node_update.values().flatten()
    }

    pub fn placements(&self) -> impl Iterator<Item = &Allocation> {
        self.node_allocation.values().flatten()
    }
}

/// Appends to the node's list without cloning the key when it exists.
fn push(map: &mut BTreeMap<String, Vec<Allocation>>, alloc: Allocation) {
    match map.get_mut(&alloc.node_id) {
        Some(list) => list.push(alloc),
        None => {
            map.insert(alloc.node_id.clone(), vec![alloc]);
        }
    }
}

/// Everything one scheduler run decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerResult {
    pub plan: Plan,
    /// The evaluation as it should be written once the plan is committed:
    /// `complete`, with `FailedTGAllocs`, `QueuedAllocations`,
    /// `BlockedEval` and `ClassEligibility`/`EscapedComputedClass` set.
    pub eval: Evaluation,
    /// Groups that could not place everything: one metric per group.
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// Placements asked for but not made, per group.
    pub queued_allocations: BTreeMap<String, i64>,
    /// A `blocked` eval to create (`queued-allocs`), when something could
    /// not be placed; system jobs get one per exhausted node.
    pub blocked_evals: Vec<Evaluation>,
    /// Delayed reschedules: `pending` evals with `WaitUntil`.
    pub followup_evals: Vec<Evaluation>,
}
