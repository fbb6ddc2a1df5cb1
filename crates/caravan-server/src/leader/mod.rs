//! What the leader does while it leads: the leadership lifecycle and the
//! duties it starts and stops (heartbeat timers, the drainer, the evaluation
//! pipeline and its reactions), which see the server through
//! [`context::LeaderServer`].

mod clock;
pub mod context;
pub mod core_gc;
mod deliveries;
pub mod drainer;
mod establish;
pub mod heartbeat;
pub mod lifecycle;
pub mod plan_apply;
pub mod reactions;
pub mod scheduling;
pub mod stats;

pub use lifecycle::{LeaderDuty, LeaderToken, Leadership, TermCancel};
