//! What the scheduler reads: a read-only view of one state snapshot.

use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::job::Job;
use caravan_api_types::node::Node;
use caravan_api_types::operator::SchedulerConfiguration;

/// A consistent snapshot of the cluster state. The server implements it
/// over its persistent-map snapshot; [`crate::harness::MemoryState`] over
/// plain maps. Every call must answer from the same snapshot.
pub trait StateView {
    /// The Raft index the snapshot is at (mixed into the shuffle seed, and
    /// recorded as the blocked eval's `SnapshotIndex`).
    fn index(&self) -> u64;
    /// Every node, in any order (the scheduler shuffles).
    fn nodes(&self) -> Vec<Arc<Node>>;
    fn node(&self, id: &str) -> Option<Arc<Node>>;
    /// Every allocation on a node, terminal ones included.
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>>;
    /// Every allocation of a job, terminal ones included.
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>>;
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>>;
    fn scheduler_config(&self) -> SchedulerConfiguration;
}
