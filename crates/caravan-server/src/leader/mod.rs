//! What the leader does while it leads: the leadership lifecycle and the
//! duties it starts and stops.

pub mod lifecycle;

pub use lifecycle::{LeaderDuty, LeaderToken, Leadership, TermCancel};
