//! What the leader does while it leads: the leadership lifecycle and the
//! duties it starts and stops (heartbeat timers, the drainer).

pub mod drainer;
pub mod heartbeat;
pub mod lifecycle;

pub use lifecycle::{LeaderDuty, LeaderToken, Leadership, TermCancel};
