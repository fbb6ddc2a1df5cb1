//! Every route the RPC listener serves besides the HTTP API (which it also
//! serves, for requests forwarded to the leader).
//!
//! Server-only routes ([`is_server_only`]) accept only callers that prove
//! the cluster key; node routes accept only the node's own secret.

/// Raft messages (append, vote, pre-vote, transfer-leader) as JSON.
pub const RAFT: &str = "/rpc/raft";
/// A whole snapshot as a raw body, with the vote in [`VOTE_HEADER`].
pub const RAFT_SNAPSHOT: &str = "/rpc/raft/snapshot";
/// The header carrying the sender's vote with a snapshot.
pub const VOTE_HEADER: &str = "x-caravan-vote";
/// The leader's commit index confirmed by a quorum (follower reads).
pub const RAFT_READ_INDEX: &str = "/rpc/raft/read-index";
/// A follower asks the leader to remove a server from Raft.
pub const RAFT_REMOVE_PEER: &str = "/rpc/raft/remove-peer";
/// Whether a server already has a Raft configuration (before bootstrap).
pub const RAFT_STATUS: &str = "/rpc/raft/status";
/// A client checks a server's region before adopting it.
pub const PING: &str = "/rpc/ping";
/// Nomad's `Node.Register`.
pub const NODE_REGISTER: &str = "/rpc/node/register";
/// Nomad's `Node.UpdateStatus` (the heartbeat).
pub const NODE_HEARTBEAT: &str = "/rpc/node/heartbeat";
/// Nomad's `Node.EmitEvents`.
pub const NODE_EVENTS: &str = "/rpc/node/events";

/// Whether `path` is a server-to-server route, which only a caller holding
/// the cluster key may use.
pub fn is_server_only(path: &str) -> bool {
    matches!(
        path,
        RAFT | RAFT_SNAPSHOT | RAFT_READ_INDEX | RAFT_REMOVE_PEER | RAFT_STATUS
    )
}
