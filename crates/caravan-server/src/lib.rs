//! The server role of a Caravan agent: a Raft member (openraft) whose log
//! lives in redb, whose FSM is the state store, and which carries out the
//! leader's duties.
//!
//! A write's path: [`Server::apply`] on the leader (requests reach it as
//! forwarded HTTP requests, never as raw commands) → openraft
//! `client_write` → the entry is appended
//! to the log by [`log_store::LogStore`] (group-committed) and replicated →
//! once committed, [`state_machine::StateMachine`] applies it to the
//! [`caravan_state::StateStore`] → watches wake blocking queries.

pub mod address;
pub mod autopilot;
pub mod cluster;
mod drainer;
pub mod gossip;
pub mod heartbeat;
pub mod keyring;
pub mod leader;
pub mod log_store;
pub mod memory_disk;
pub mod raft_types;
pub mod rpc;
pub mod runtime;
mod server;
pub use server::load_or_create_node_id;
pub mod state_machine;
pub mod transport;

pub use caravan_rpc::{NodeEvents, NodeHeartbeat, NodeRpcReply};
pub use server::{
    AppliedWrite, FollowerProgress, RaftMember, Server, ServerError, ServerOptions, LEADER_WAIT,
    MAX_RAFT_NUMBER,
};
