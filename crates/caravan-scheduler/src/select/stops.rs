//! The plan's stops as the stack sees them. A stop frees its allocation's
//! room for the selections made after it, and a withdrawn stop takes the
//! room back; both work whether or not the node's usage has been read yet.

use caravan_api_types::alloc::Allocation;

use super::counts::group_position;
use super::Stack;

impl Stack<'_> {
    /// Counts `alloc` as stopped by the plan from now on. Returns `false`
    /// when it already was (a stop the caller must not push or withdraw
    /// again).
    pub fn stop(&mut self, alloc: &Allocation) -> bool {
        if !self.stopped.insert(alloc.id.clone()) {
            return false;
        }
        // A terminal allocation was never counted: nothing to free.
        if !alloc.terminal() {
            self.count_stop(alloc, -1);
        }
        true
    }

    /// Gives back an allocation the plan no longer stops (its replacement
    /// was not placed): it holds its resources again.
    pub fn unstop(&mut self, alloc: &Allocation) {
        if self.stopped.remove(&alloc.id) && !alloc.terminal() {
            self.count_stop(alloc, 1);
        }
    }

    /// Adds (`delta` 1) or removes (-1) `alloc` where the stack counted it
    /// when it was not stopped: its node's usage and group counts (if that
    /// node's state was built already; a later build reads `stopped`), and
    /// the spread and distinct_property counts (built up front).
    fn count_stop(&mut self, alloc: &Allocation, delta: i64) {
        let own = alloc.job_id == self.job.id && alloc.namespace == self.job.namespace;
        let slot = self.index_of.get(&alloc.node_id).copied();
        if let Some(node_state) = slot.and_then(|i| self.node_states[i].as_mut()) {
            let usage = &mut node_state.usage;
            match (&alloc.allocated_resources, delta > 0) {
                (Some(resources), true) => usage.commit(resources),
                (Some(resources), false) => usage.release(resources),
                // Counted as one allocation, holding nothing (NodeUsage::new).
                (None, true) => usage.allocs += 1,
                (None, false) => usage.allocs = usage.allocs.saturating_sub(1),
            }
            if own {
                let position = group_position(&self.job, &alloc.task_group);
                node_state.job_groups.add(position, delta);
            }
        }
        if own && !(self.spreads.is_empty() && self.distinct.is_empty()) {
            if let Some(node) = self.state.node(&alloc.node_id) {
                self.count_placement(&alloc.task_group, &node, delta);
            }
        }
    }
}
