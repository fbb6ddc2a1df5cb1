//! Raft: the type configuration, the redb log, the state machine over the
//! state store, the transport between servers and the runtime openraft
//! runs on.

pub(crate) mod config;
mod control;
pub mod log_store;
pub mod memory_disk;
pub mod runtime;
pub mod state_machine;
pub mod transport;
pub mod types;
pub mod writer_stats;

/// This server's Raft instance.
pub type Raft = openraft::Raft<types::TypeConfig, state_machine::StateMachine>;
