//! The evaluation pipeline's counters, kept on the server across its
//! terms as leader (a module of their own: the server's context and the
//! pipeline both name them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the pipeline has done on this server, across its terms as leader
/// (shown in `/v1/agent/self` under `stats.scheduler`; the figures the
/// benchmarks read).
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Evaluations a worker finished (complete, blocked again or failed).
    pub evals_processed: AtomicU64,
    /// Plans committed through Raft.
    pub plans_applied: AtomicU64,
    /// Plans the applier cut short because a node no longer fit (another
    /// worker's plan took the room first): each costs a replan.
    pub plans_refused: AtomicU64,
    /// Pending evaluations written `canceled` because a plan answered them.
    pub evals_canceled: AtomicU64,
    /// Node changes that gave a job no new evaluation because one of its
    /// evaluations was already waiting.
    pub node_evals_coalesced: AtomicU64,
}

impl SchedulerStats {
    /// The counters by name, as text (agent stats are strings in Nomad).
    pub fn figures(&self) -> BTreeMap<&'static str, String> {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
        BTreeMap::from([
            ("evals_processed", read(&self.evals_processed)),
            ("plans_applied", read(&self.plans_applied)),
            ("plans_refused", read(&self.plans_refused)),
            ("evals_canceled", read(&self.evals_canceled)),
            ("node_evals_coalesced", read(&self.node_evals_coalesced)),
        ])
    }
}

pub(crate) fn count(counter: &AtomicU64, by: usize) {
    counter.fetch_add(by as u64, Ordering::Relaxed);
}
