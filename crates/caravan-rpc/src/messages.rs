//! Bodies of the RPCs that do not carry Raft's own types.

use serde::{Deserialize, Serialize};

/// What a server answers a client's register or heartbeat call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRpcReply {
    /// When to heartbeat next, in milliseconds.
    pub heartbeat_ttl_ms: u64,
    /// The Raft index of the write, 0 if nothing changed.
    pub index: u64,
    pub leader_rpc_addr: String,
    /// Every server's RPC address, for the client's failover list.
    pub servers: Vec<String>,
    pub num_nodes: u64,
}

/// A client's heartbeat: who it is and the status it reports.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub node_id: String,
    pub secret_id: String,
    pub status: String,
}

impl std::fmt::Debug for NodeHeartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHeartbeat")
            .field("node_id", &self.node_id)
            .field("secret_id", &"<redacted>")
            .field("status", &self.status)
            .finish()
    }
}

/// Events a client reports about its own node.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvents {
    pub node_id: String,
    pub secret_id: String,
    pub events: Vec<caravan_api_types::node::NodeEvent>,
}

impl std::fmt::Debug for NodeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEvents")
            .field("node_id", &self.node_id)
            .field("secret_id", &"<redacted>")
            .field("events", &self.events.len())
            .finish()
    }
}

/// What a ping answers: enough for a client to know it reached a server of
/// the right region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingReply {
    pub region: String,
    pub datacenter: String,
    pub node_id: String,
}

/// What a server says of its Raft state before a bootstrap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    pub initialized: bool,
}

/// A client asks for its allocations (Nomad's `Node.GetClientAllocs`):
/// answered at once when the node's allocations moved past `min_index`,
/// otherwise held until they do or `wait_ms` passes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAllocsRequest {
    pub node_id: String,
    pub secret_id: String,
    pub min_index: u64,
    pub wait_ms: u64,
    /// Answer from a state at least as new as the leader's commit index
    /// (a follower catches up first) instead of the server's own, possibly
    /// stale, one: a client's first read after it starts (Nomad's
    /// `AllowStale: false`). Absent from older clients: a stale read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consistent: bool,
}

impl std::fmt::Debug for NodeAllocsRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAllocsRequest")
            .field("node_id", &self.node_id)
            .field("secret_id", &"<redacted>")
            .field("min_index", &self.min_index)
            .field("wait_ms", &self.wait_ms)
            .field("consistent", &self.consistent)
            .finish()
    }
}

/// The node's allocations at `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAllocsReply {
    /// The index of the node's allocations as answered; the next request's
    /// `min_index`.
    pub index: u64,
    /// Every allocation on the node, with its `AllocModifyIndex`: one the
    /// client runs that is missing here was garbage collected.
    pub allocs: std::collections::BTreeMap<String, u64>,
    /// In full (with their job), those modified after the request's
    /// `min_index`.
    pub changed: Vec<caravan_api_types::alloc::Allocation>,
}

/// What a client reports about one of its allocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocUpdate {
    pub id: String,
    pub client_status: String,
    pub client_description: String,
    pub task_states: std::collections::BTreeMap<String, caravan_api_types::alloc::TaskState>,
    /// The allocation's health once the client decided it (service
    /// allocations, from the group's `migrate` block): what the drainer
    /// waits for before moving more of a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_status: Option<caravan_api_types::alloc::AllocDeploymentStatus>,
}

/// A batch of allocation updates from one client (Nomad's
/// `Node.UpdateAlloc`); answered with the index of the write.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAllocsUpdate {
    pub node_id: String,
    pub secret_id: String,
    pub allocs: Vec<AllocUpdate>,
}

impl std::fmt::Debug for NodeAllocsUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAllocsUpdate")
            .field("node_id", &self.node_id)
            .field("secret_id", &"<redacted>")
            .field("allocs", &self.allocs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_node_secret() {
        let beat = NodeHeartbeat {
            node_id: "n".to_string(),
            secret_id: "very-secret".to_string(),
            status: "ready".to_string(),
        };
        assert!(!format!("{beat:?}").contains("very-secret"));
        let events = NodeEvents {
            node_id: "n".to_string(),
            secret_id: "very-secret".to_string(),
            events: Vec::new(),
        };
        assert!(!format!("{events:?}").contains("very-secret"));
        // The wire form still carries it.
        assert!(serde_json::to_string(&beat)
            .unwrap()
            .contains("very-secret"));
    }

    #[test]
    fn an_allocs_query_is_stale_unless_it_asks_and_says_so_only_then() {
        // An older client's query (no field) is a stale read.
        let old: NodeAllocsRequest =
            serde_json::from_str(r#"{"node_id":"n","secret_id":"s","min_index":3,"wait_ms":0}"#)
                .unwrap();
        assert!(!old.consistent);
        // A stale query is written as before, for older servers.
        assert!(!serde_json::to_string(&old).unwrap().contains("consistent"));
        let first = NodeAllocsRequest {
            consistent: true,
            ..old
        };
        let wire = serde_json::to_string(&first).unwrap();
        assert!(wire.contains(r#""consistent":true"#), "{wire}");
        let back: NodeAllocsRequest = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, first);
        assert!(!format!("{first:?}").contains("\"s\""));
    }
}
