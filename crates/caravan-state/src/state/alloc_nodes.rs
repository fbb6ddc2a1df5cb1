//! The index of each node's allocations: what a client's blocking read of
//! them (Nomad's `Node.GetClientAllocs`) answers and compares its
//! `min_index` with.
//!
//! The newest `ModifyIndex` among a node's allocations is not enough:
//! removing one (garbage collection) can lower it, and a client ignores an
//! answer older than the one it has, so it would not learn of the removal
//! until something newer landed on the node. The state keeps, per node
//! with allocations, the index of the last write that placed, changed or
//! removed one of them (every such write goes through `put_alloc` or
//! `remove_alloc`), persisted in snapshots.
//!
//! A node without an entry (no allocations left, or a state restored from
//! a snapshot written before the entries were kept) answers the
//! allocations table's index, Nomad's answer for a node without
//! allocations. Either way the answer lies between the index of the last
//! write to the node's allocations and the state's own index (every write
//! to a node's allocations also moves the table's index). That is what a
//! client needs: the answer it holds came from a state that had every
//! write up to it, and any later write to its allocations (a removal too)
//! makes every state that applied it answer past it. An answer below the
//! client's only means that server has nothing newer for it (a lagging
//! follower, or one answering the node's own index after another answered
//! the table's). An entry is dropped with its node's last allocation, so
//! the map holds only nodes that have some.

use std::sync::Arc;

use caravan_api_types::alloc::Allocation;

use super::{State, Table, ALLOCS_BY_NODE};
use crate::table::Touched;

impl State {
    /// The index of `node_id`'s allocations: that of the last write to
    /// them, or the allocations table's when the node has none (never 0
    /// once anything was written).
    pub fn node_allocs_index(&self, node_id: &str) -> u64 {
        self.alloc_node_indexes
            .get(node_id)
            .copied()
            .unwrap_or_else(|| self.table_index(Table::Allocs))
    }

    /// Records that the write at `index` inserted, changed or removed an
    /// allocation of `node_id`: the node's entry moves to `index`, or goes
    /// when the node has no allocation left (the table's index, which this
    /// write also moves, then answers for it).
    pub(crate) fn note_node_allocs(&mut self, node_id: &str, index: u64) {
        if self
            .allocs
            .by_index(ALLOCS_BY_NODE, node_id)
            .next()
            .is_some()
        {
            self.alloc_node_indexes.insert(node_id.to_string(), index);
        } else {
            self.alloc_node_indexes.remove(node_id);
        }
    }

    /// Removes allocation `id`, moving its node's index: every removal
    /// goes through here, as every insert and change goes through
    /// `put_alloc`.
    pub(crate) fn remove_alloc(
        &mut self,
        id: &String,
        index: u64,
        touched: &mut Touched,
    ) -> Option<Arc<Allocation>> {
        let alloc = self.allocs.remove(id, touched)?;
        self.note_node_allocs(&alloc.node_id, index);
        if !alloc.terminal() {
            self.allocs_freed.0 = index;
        }
        Some(alloc)
    }

    /// Every node's entry, in node order (for snapshots).
    pub(crate) fn alloc_node_indexes(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.alloc_node_indexes.iter()
    }
}

#[cfg(test)]
#[path = "alloc_nodes_tests.rs"]
mod tests;
