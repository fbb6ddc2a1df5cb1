//! Caravan's scheduler: Nomad's placement logic as pure functions.
//!
//! Input: a read-only [`StateView`] of one snapshot plus an
//! [`Evaluation`](caravan_api_types::eval::Evaluation); output: a
//! [`SchedulerResult`] — the [`Plan`] for the server to commit and the
//! evaluation's outcome (failed groups, queued counts, blocked and
//! follow-up evals). No async, no I/O, no clock (the time is passed in),
//! no randomness but a seed: the same inputs give the same plan.
//!
//! [`fit`] is the one fit check; the plan applier calls it too.

pub mod feasible;
pub mod fit;
pub mod generic;
pub mod harness;
pub mod ids;
pub mod metrics;
pub mod plan;
pub mod ports;
pub mod preempt;
pub mod rank;
pub mod reconcile;
pub mod rng;
pub mod select;
pub mod state;
pub mod system;

pub use fit::{fit, Ask, Exhausted, NetworkError, NodeUsage};
pub use ids::{IdGenerator, SequentialIds, UuidIds};
pub use plan::{Plan, SchedulerResult};
pub use ports::NetworkIndex;
pub use state::StateView;

use caravan_api_types::job::{
    JOB_TYPE_BATCH, JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM,
};
pub use generic::Context;

/// Why an evaluation could not be scheduled at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown scheduler type '{0}'")]
    UnknownType(String),
}

/// Runs the scheduler the evaluation's `Type` names.
pub fn schedule(
    state: &dyn StateView,
    ctx: &mut Context<'_>,
) -> Result<SchedulerResult, ScheduleError> {
    match ctx.eval.eval_type.as_str() {
        JOB_TYPE_SERVICE | JOB_TYPE_BATCH => Ok(generic::schedule(state, ctx)),
        JOB_TYPE_SYSTEM | JOB_TYPE_SYSBATCH => Ok(system::schedule(state, ctx)),
        other => Err(ScheduleError::UnknownType(other.to_string())),
    }
}
