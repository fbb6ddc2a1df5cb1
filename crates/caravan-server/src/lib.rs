//! The server role of a Caravan agent: a Raft member (openraft) whose log
//! lives in redb, whose FSM is the state store, and which carries out the
//! leader's duties.
//!
//! A write's path: [`Server::apply`] on the leader (requests reach it as
//! forwarded HTTP requests, never as raw commands) → openraft
//! `client_write` → the entry is appended
//! to the log by [`raft::log_store::LogStore`] (group-committed) and replicated →
//! once committed, [`raft::state_machine::StateMachine`] applies it to the
//! [`caravan_state::StateStore`] → watches wake blocking queries.

pub mod cluster;
pub mod endpoints;
mod error;
pub mod leader;
mod options;
pub mod raft;
mod server;

// The paths other crates use, kept from before the server was split.
pub use cluster::{autopilot, gossip, keyring};
pub use endpoints::{forward, rpc};
pub use leader::heartbeat;
pub use raft::types as raft_types;
pub use raft::{log_store, memory_disk, runtime, state_machine, transport};

pub use caravan_rpc::{NodeEvents, NodeHeartbeat, NodeRpcReply};
pub use error::ServerError;
pub use options::ServerOptions;
pub use raft::types::{AppliedWrite, FollowerProgress, RaftMember, MAX_RAFT_NUMBER};
pub use server::{load_or_create_node_id, Server, LEADER_WAIT};
