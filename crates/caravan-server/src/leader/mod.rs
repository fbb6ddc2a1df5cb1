//! What the leader does while it leads: the leadership lifecycle and the
//! duties it starts and stops (heartbeat timers, the drainer), which see the server through
//! [`context::LeaderServer`].

pub mod context;
mod deliveries;
pub mod drainer;
mod establish;
pub mod heartbeat;
pub mod lifecycle;
pub mod plan_apply;
pub mod reactions;
pub mod scheduling;

pub use lifecycle::{LeaderDuty, LeaderToken, Leadership, TermCancel};
