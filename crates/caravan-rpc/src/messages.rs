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
}
