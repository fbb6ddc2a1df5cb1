//! The node RPCs (Nomad's `Node.Register`, `Node.UpdateStatus`,
//! `Node.EmitEvents`): run on the leader, which owns the heartbeat timers;
//! followers pass them on.

use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::node::Node;
use caravan_rpc::{paths, NodeEvents, NodeHeartbeat, NodeRpcReply, RpcError};
use caravan_state::{Command, CommandResult};

use crate::server::Server;

impl Server {
    fn node_reply(&self, ttl: Duration, index: u64) -> NodeRpcReply {
        NodeRpcReply {
            heartbeat_ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            index,
            leader_rpc_addr: self.node.rpc_addr.clone(),
            servers: self.server_rpc_addresses(),
            num_nodes: self.store.snapshot().node_count() as u64,
        }
    }

    /// A client registers its node (Nomad's `Node.Register`). Runs on the
    /// leader, which owns the heartbeat timers; followers pass it on. A
    /// node already known must present its own secret (Nomad's rule), so
    /// nobody can take over another node's ID.
    pub async fn node_register(&self, node: Node) -> Result<NodeRpcReply, RpcError> {
        if !self.is_ready_leader() {
            return self.forward_to_leader(paths::NODE_REGISTER, &node).await;
        }
        if uuid::Uuid::parse_str(&node.id).is_err() {
            return Err(RpcError::Invalid(format!(
                "invalid node ID {:?}: must be a UUID",
                short(&node.id)
            )));
        }
        if node.secret_id.is_empty() {
            return Err(RpcError::Invalid("missing node secret ID".to_string()));
        }
        if !node.status.is_empty() {
            validate_node_status(&node.status)?;
        }
        if let Some(stored) = self.store.snapshot().node(&node.id) {
            if !caravan_state::secrets_equal(&stored.secret_id, &node.secret_id) {
                return Err(RpcError::SecretMismatch);
            }
        }
        let node_id = node.id.clone();
        let write = self
            .apply(Command::NodeRegister {
                node: Box::new(node),
                now: chrono::Utc::now(),
            })
            .await?;
        if let CommandResult::Refused(reason) = write.result {
            return Err(RpcError::Refused(reason));
        }
        let ttl = self.heartbeats.reset(&node_id);
        Ok(self.node_reply(ttl, write.index))
    }

    /// The stored node whose secret the caller presented.
    pub(super) fn authenticated_node(
        &self,
        node_id: &str,
        secret_id: &str,
    ) -> Result<Arc<Node>, RpcError> {
        let stored = self.store.snapshot().node(node_id).cloned();
        let Some(stored) = stored else {
            return Err(RpcError::NodeNotFound);
        };
        // An empty secret proves nothing, even against a node stored
        // without one (old or restored data).
        if secret_id.is_empty() || !caravan_state::secrets_equal(&stored.secret_id, secret_id) {
            return Err(RpcError::SecretMismatch);
        }
        Ok(stored)
    }

    /// A client's heartbeat (Nomad's `Node.UpdateStatus`): resets the
    /// node's timer and writes only when the status changes.
    pub async fn node_heartbeat(&self, beat: NodeHeartbeat) -> Result<NodeRpcReply, RpcError> {
        if !self.is_ready_leader() {
            return self.forward_to_leader(paths::NODE_HEARTBEAT, &beat).await;
        }
        validate_node_status(&beat.status)?;
        let stored = self.authenticated_node(&beat.node_id, &beat.secret_id)?;
        let mut index = 0;
        if stored.status != beat.status {
            let write = self
                .apply(Command::NodeUpdateStatus {
                    node_id: beat.node_id.clone(),
                    status: beat.status.clone(),
                    event: None,
                    now: chrono::Utc::now(),
                })
                .await?;
            if let CommandResult::Refused(reason) = write.result {
                return Err(RpcError::Refused(reason));
            }
            index = write.index;
        }
        let ttl = self.heartbeats.reset(&beat.node_id);
        Ok(self.node_reply(ttl, index))
    }

    /// Stores events a client reports about its node (Nomad's
    /// `Node.EmitEvents`).
    pub async fn node_emit_events(&self, report: NodeEvents) -> Result<u64, RpcError> {
        if !self.leads_or_waits().await? {
            return self.forward_to_leader(paths::NODE_EVENTS, &report).await;
        }
        self.authenticated_node(&report.node_id, &report.secret_id)?;
        let write = self
            .apply(Command::NodeEmitEvents {
                node_id: report.node_id,
                events: report.events,
            })
            .await?;
        match write.result {
            CommandResult::Refused(reason) => Err(RpcError::Refused(reason)),
            _ => Ok(write.index),
        }
    }
}

/// The statuses a client may report (Nomad's `ValidNodeStatus`).
fn validate_node_status(status: &str) -> Result<(), RpcError> {
    match status {
        "initializing" | "ready" | "down" | "disconnected" => Ok(()),
        other => Err(RpcError::Invalid(format!(
            "invalid status for node: {:?}",
            short(other)
        ))),
    }
}

/// At most a short prefix of caller-supplied text, for error messages.
pub(super) fn short(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
