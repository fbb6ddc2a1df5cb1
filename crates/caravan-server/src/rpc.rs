//! The server side of the RPC listener: Raft traffic, writes forwarded by
//! followers, and the ping clients use to check a server before adopting it.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use caravan_state::Command;
use serde::{Deserialize, Serialize};

use caravan_api_types::node::Node;

use crate::server::{AppliedWrite, NodeEvents, NodeHeartbeat, NodeRpcReply, Server};
use crate::transport::{RaftMessage, RaftReply, RAFT_PATH, SNAPSHOT_PATH, VOTE_HEADER};

pub const APPLY_PATH: &str = "/rpc/apply";
pub const PING_PATH: &str = "/rpc/ping";
pub const NODE_REGISTER_PATH: &str = "/rpc/node/register";
pub const NODE_HEARTBEAT_PATH: &str = "/rpc/node/heartbeat";
pub const REMOVE_PEER_PATH: &str = "/rpc/raft/remove-peer";
pub const NODE_EVENTS_PATH: &str = "/rpc/node/events";
pub const READ_INDEX_PATH: &str = "/rpc/raft/read-index";

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
        .route(SNAPSHOT_PATH, post(install_snapshot))
        .route(APPLY_PATH, post(apply))
        .route(PING_PATH, get(ping))
        .route(NODE_REGISTER_PATH, post(node_register))
        .route(NODE_HEARTBEAT_PATH, post(node_heartbeat))
        .route(REMOVE_PEER_PATH, post(remove_peer))
        .route(NODE_EVENTS_PATH, post(node_events))
        .route(READ_INDEX_PATH, get(read_index))
        .route(crate::cluster::RAFT_STATUS_PATH, get(raft_status))
        // Snapshots and large append batches exceed axum's default 2 MB.
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        .with_state(server)
}

async fn raft(
    State(server): State<Arc<Server>>,
    Json(message): Json<RaftMessage>,
) -> Json<Result<RaftReply, String>> {
    Json(server.handle_raft(message).await)
}

async fn install_snapshot(
    State(server): State<Arc<Server>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Json<Result<RaftReply, String>> {
    let vote = headers
        .get(VOTE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| "missing vote header".to_string())
        .and_then(|text| serde_json::from_str(text).map_err(|error| error.to_string()));
    match vote {
        Ok(vote) => Json(
            server
                .handle_raft(RaftMessage::InstallSnapshot {
                    vote,
                    data: body.to_vec(),
                })
                .await,
        ),
        Err(error) => Json(Err(error)),
    }
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

async fn remove_peer(
    State(server): State<Arc<Server>>,
    Json(node_id): Json<String>,
) -> Json<Result<(), String>> {
    Json(server.remove_server_by_node_id(&node_id).await)
}

async fn raft_status(State(server): State<Arc<Server>>) -> Json<crate::cluster::RaftStatus> {
    Json(crate::cluster::RaftStatus {
        initialized: server.is_initialized().await,
    })
}

async fn read_index(State(server): State<Arc<Server>>) -> Json<Result<u64, String>> {
    Json(server.read_index().await)
}

async fn node_events(
    State(server): State<Arc<Server>>,
    Json(report): Json<NodeEvents>,
) -> Json<Result<u64, String>> {
    Json(server.node_emit_events(report).await)
}
