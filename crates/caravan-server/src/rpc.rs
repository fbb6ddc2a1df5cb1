//! The server side of the RPC listener: Raft traffic, writes forwarded by
//! followers, and the ping clients use to check a server before adopting it.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use caravan_state::Command;
use serde::{Deserialize, Serialize};

use caravan_api_types::node::Node;

use crate::server::{AppliedWrite, NodeHeartbeat, NodeRpcReply, Server};
use crate::transport::{RaftMessage, RaftReply, RAFT_PATH};

pub const APPLY_PATH: &str = "/rpc/apply";
pub const PING_PATH: &str = "/rpc/ping";
pub const NODE_REGISTER_PATH: &str = "/rpc/node/register";
pub const NODE_HEARTBEAT_PATH: &str = "/rpc/node/heartbeat";

/// What a ping answers: enough for a client to know it reached a server of
/// the right region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingReply {
    pub region: String,
    pub datacenter: String,
    pub node_id: String,
}

/// The RPC routes of a server. The agent merges these with the API routes
/// that forwarded HTTP requests reach.
pub fn rpc_router(server: Arc<Server>) -> Router {
    Router::new()
        .route(RAFT_PATH, post(raft))
        .route(APPLY_PATH, post(apply))
        .route(PING_PATH, get(ping))
        .route(NODE_REGISTER_PATH, post(node_register))
        .route(NODE_HEARTBEAT_PATH, post(node_heartbeat))
        .with_state(server)
}

async fn raft(
    State(server): State<Arc<Server>>,
    Json(message): Json<RaftMessage>,
) -> Json<Result<RaftReply, String>> {
    Json(server.handle_raft(message).await)
}

async fn apply(
    State(server): State<Arc<Server>>,
    Json(command): Json<Command>,
) -> Json<Result<AppliedWrite, String>> {
    Json(server.apply_forwarded(command).await)
}

async fn ping(State(server): State<Arc<Server>>) -> Json<PingReply> {
    let options = server.options();
    Json(PingReply {
        region: options.region.clone(),
        datacenter: options.datacenter.clone(),
        node_id: server.node().id.clone(),
    })
}

async fn node_register(
    State(server): State<Arc<Server>>,
    Json(node): Json<Node>,
) -> Json<Result<NodeRpcReply, String>> {
    Json(server.node_register(node).await)
}

async fn node_heartbeat(
    State(server): State<Arc<Server>>,
    Json(beat): Json<NodeHeartbeat>,
) -> Json<Result<NodeRpcReply, String>> {
    Json(server.node_heartbeat(beat).await)
}
