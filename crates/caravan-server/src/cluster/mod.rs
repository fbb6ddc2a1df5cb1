//! The cluster of servers: gossip membership (and its keyring), cluster
//! formation with `bootstrap_expect`, and autopilot.

pub mod autopilot;
pub mod formation;
pub mod gossip;
pub mod keyring;
pub mod membership;

pub use formation::bootstrap_expect;
