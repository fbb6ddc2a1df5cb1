//! The openraft type configuration: what a log entry carries and how a
//! server is named inside Raft.

use std::io::Cursor;
use std::time::Duration;

use caravan_state::{Command, CommandResult};
use serde::{Deserialize, Serialize};

/// A server as Raft's membership records it. Raft needs a `u64` id; the
/// server's real identity is its node UUID (`id`), which is what Nomad shows
/// as the Raft server ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNode {
    /// The server's node UUID.
    pub id: String,
    /// Gossip name, `<node>.<region>`.
    pub name: String,
    /// Advertised RPC address (`ip:port`): Raft traffic and forwarding.
    pub rpc_addr: String,
    /// Advertised HTTP address (`ip:port`).
    pub http_addr: String,
}

/// What a log entry carries: one state command. Its `Display` (what
/// openraft's log lines show) is the command's kind and keys, and its
/// `Debug` redacts secrets; neither shows one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftRequest(pub Command);

impl std::fmt::Display for RaftRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What applying an entry answered. Blank and membership entries answer
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftResponse(pub Option<CommandResult>);

openraft::declare_raft_types!(
    /// Caravan's Raft types.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = ServerNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = crate::raft::runtime::CaravanRuntime,
);

pub type RaftId = u64;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type SnapshotData = Cursor<Vec<u8>>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// Raft's numeric id for a server, taken from its node UUID so that every
/// server computes the same number for the same peer.
pub fn raft_id_of(node_id: &str) -> RaftId {
    match uuid::Uuid::parse_str(node_id) {
        Ok(uuid) => {
            let bytes = uuid.as_bytes();
            let mut high = [0u8; 8];
            high.copy_from_slice(&bytes[..8]);
            u64::from_be_bytes(high) & (u64::MAX >> 1)
        }
        // Non-UUID ids are not produced by Caravan; hash them stably anyway.
        Err(_) => {
            node_id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                })
                & (u64::MAX >> 1)
        }
    }
}

/// A write that went through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedWrite {
    /// The Raft index the write was committed at.
    pub index: u64,
    pub result: CommandResult,
}

/// What the leader knows of a follower's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub last_index: u64,
    pub last_term: u64,
    /// Since the follower last acknowledged the leader; `None` if never.
    pub last_contact: Option<Duration>,
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    pub node: ServerNode,
    pub voter: bool,
    pub leader: bool,
}

/// The highest term or log index a peer may send. Real clusters never come
/// near it (a term is one election); a forged message with a term near
/// `u64::MAX` would make openraft overflow and panic at the next election,
/// and, being persisted, again at every restart.
pub const MAX_RAFT_NUMBER: u64 = 1 << 48;
