//! What a leader duty may ask of the server it runs on: a narrow view, so
//! that duties do not depend on the server type (which starts them).

use std::sync::Arc;

use caravan_state::{Command, StateStore};
use futures::future::BoxFuture;

use crate::error::ServerError;
use crate::raft::types::AppliedWrite;

/// The server as a leader duty sees it.
pub trait LeaderServer: Send + Sync + 'static {
    /// The replicated state.
    fn store(&self) -> &Arc<StateStore>;
    /// Whether a quorum acknowledged this leader within the lease.
    fn holds_lease(&self) -> bool;
    /// Commits `command` through Raft.
    fn apply(&self, command: Command) -> BoxFuture<'_, Result<AppliedWrite, ServerError>>;
    /// Counters of the evaluation pipeline.
    fn scheduler_stats(&self) -> &crate::leader::stats::SchedulerStats;
    /// How many evaluations are planned at once (0: one per core).
    fn scheduler_workers(&self) -> usize {
        0
    }
    /// The job types this server schedules (empty: every type).
    fn enabled_schedulers(&self) -> &[String] {
        &[]
    }
    /// When garbage collection runs and what it collects.
    fn gc_config(&self) -> crate::options::GcConfig {
        crate::options::GcConfig::default()
    }
}
