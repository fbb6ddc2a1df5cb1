//! The RPC port's contract: what servers say to each other and what clients
//! say to servers.
//!
//! - [`paths`]: every route on the RPC listener.
//! - [`messages`]: the bodies of the node RPCs, the ping and the bootstrap
//!   status. Raft's own messages carry openraft types and stay with the
//!   server (`caravan-server`'s transport), so a client never compiles
//!   openraft.
//! - [`RpcError`]: the typed error every RPC answers with (`Result<T,
//!   RpcError>` as JSON), so callers match on variants, not on text.
//! - [`auth`]: the cluster key that authenticates server-to-server calls.
//! - [`RpcClient`]: the typed client servers and clients call with.
//! - [`address`]: turning operators' addresses into socket addresses.

pub mod address;
pub mod auth;
mod client;
mod error;
pub mod messages;
pub mod paths;

pub use auth::{AuthError, ClusterKey, PeerIdentity};
pub use client::{CallError, RpcClient};
pub use error::RpcError;
pub use messages::{
    AllocUpdate, NodeAllocsReply, NodeAllocsRequest, NodeAllocsUpdate, NodeEvents, NodeHeartbeat,
    NodeRpcReply, PingReply, RaftStatus,
};
