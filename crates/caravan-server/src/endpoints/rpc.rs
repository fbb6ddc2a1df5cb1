//! The server side of the RPC listener: Raft traffic, the bootstrap
//! status, the read index, peer removal, the node RPCs (register,
//! heartbeat, events, allocations and allocation reports), and the ping
//! clients use to check a server before adopting it.
//!
//! Who may call what:
//! - server-only routes ([`caravan_rpc::paths::SERVER_ONLY`]) need,
//!   under `tls { rpc = true }`, a peer certificate naming a server of this
//!   region (`server.<region>.nomad`); otherwise the cluster key's
//!   signature ([`caravan_rpc::auth`]), checked from the headers before any
//!   of the body is read;
//! - node routes need the node's own SecretID (checked in the endpoints);
//! - the ping answers anyone (region, datacenter and ID are not secret).
//!
//! The HTTP API routes merged onto this listener (for forwarded requests)
//! check ACL tokens exactly as on the HTTP port. There is no route that
//! applies a raw state command.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use caravan_api_types::node::Node;
use caravan_rpc::auth::{verify_body, AUTH_HEADER, BODY_HASH_HEADER};
use caravan_rpc::{
    paths, ClusterKey, NodeAllocsReply, NodeAllocsRequest, NodeAllocsUpdate, NodeEvents,
    NodeHeartbeat, NodeRpcReply, PeerIdentity, PingReply, RpcError,
};

use crate::raft::transport::{RaftMessage, RaftReply};
use crate::server::Server;

pub use caravan_rpc::paths::{
    NODE_EVENTS as NODE_EVENTS_PATH, NODE_HEARTBEAT as NODE_HEARTBEAT_PATH,
    NODE_REGISTER as NODE_REGISTER_PATH, PING as PING_PATH, RAFT_READ_INDEX as READ_INDEX_PATH,
    RAFT_REMOVE_PEER as REMOVE_PEER_PATH,
};

/// The largest body a snapshot install may have.
const SNAPSHOT_BODY_LIMIT: usize = 1 << 30;
/// The largest Raft append batch (openraft sends a bounded number of
/// entries per request; each is at most a few hundred KB).
const RAFT_BODY_LIMIT: usize = 64 << 20;
/// Node RPCs carry one node, a few events, or a batch of allocation
/// reports (a few KB each with their task states, for at most a few
/// hundred allocations).
const NODE_BODY_LIMIT: usize = 4 << 20;
/// A client's allocation query is a node ID, its secret and two numbers.
/// (Replies are not bounded: a node may hold hundreds of allocations, each
/// with its job.)
const NODE_QUERY_BODY_LIMIT: usize = 4 << 10;
/// Everything else server-only is tiny.
const SMALL_BODY_LIMIT: usize = 64 << 10;

/// The RPC routes of a server. The agent merges these with the API routes
/// that forwarded HTTP requests reach.
pub fn rpc_router(server: Arc<Server>) -> Router {
    let guard = ServerGuard {
        key: server.options().cluster_key.clone(),
        require_server_cert: server.options().rpc_tls,
    };
    let server_only = Router::new()
        .route(
            paths::RAFT,
            post(raft).layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT)),
        )
        .route(
            paths::RAFT_SNAPSHOT,
            post(install_snapshot).layer(DefaultBodyLimit::max(SNAPSHOT_BODY_LIMIT)),
        )
        .route(
            paths::RAFT_REMOVE_PEER,
            post(remove_peer).layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT)),
        )
        .route(paths::RAFT_READ_INDEX, get(read_index))
        .route(paths::RAFT_STATUS, get(raft_status))
        .layer(axum::middleware::from_fn_with_state(guard, authenticate));
    let nodes = Router::new()
        .route(paths::NODE_REGISTER, post(node_register))
        .route(paths::NODE_HEARTBEAT, post(node_heartbeat))
        .route(paths::NODE_EVENTS, post(node_events))
        .route(paths::NODE_ALLOCS_UPDATE, post(node_allocs_update))
        .layer(DefaultBodyLimit::max(NODE_BODY_LIMIT))
        .route(
            paths::NODE_ALLOCS,
            post(node_allocs).layer(DefaultBodyLimit::max(NODE_QUERY_BODY_LIMIT)),
        );
    Router::new()
        .route(paths::PING, get(ping))
        .merge(server_only)
        .merge(nodes)
        .with_state(server)
}

fn body_limit(path: &str) -> usize {
    match path {
        paths::RAFT_SNAPSHOT => SNAPSHOT_BODY_LIMIT,
        paths::RAFT => RAFT_BODY_LIMIT,
        _ => SMALL_BODY_LIMIT,
    }
}

fn refuse(status: axum::http::StatusCode, error: RpcError) -> Response {
    (status, Json(Err::<(), _>(error))).into_response()
}

/// How server-only routes tell a server from anyone else.
#[derive(Clone)]
struct ServerGuard {
    key: Option<Arc<ClusterKey>>,
    require_server_cert: bool,
}

/// Lets a request through only when it comes from a server of this
/// region: by its certificate under RPC TLS, else by the cluster key's
/// signature; with neither configured every caller is let through (the
/// agent said so at start).
async fn authenticate(State(guard): State<ServerGuard>, request: Request, next: Next) -> Response {
    if guard.require_server_cert {
        let peer = request.extensions().get::<PeerIdentity>().copied();
        if peer.is_some_and(|peer| peer.server_of_region) {
            return next.run(request).await;
        }
        return refuse(
            axum::http::StatusCode::FORBIDDEN,
            RpcError::Unauthenticated(
                "a server certificate of this region is required".to_string(),
            ),
        );
    }
    let Some(key) = guard.key else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let claimed = header(BODY_HASH_HEADER).map(str::to_string);
    if let Err(error) = key.verify_header(
        header(AUTH_HEADER),
        parts.method.as_str(),
        path,
        claimed.as_deref(),
    ) {
        tracing::debug!(%error, path, "refused an unauthenticated server RPC");
        return refuse(
            axum::http::StatusCode::FORBIDDEN,
            RpcError::Unauthenticated(error.to_string()),
        );
    }
    let limit = body_limit(parts.uri.path());
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) if declared.is_some_and(|length| length > limit) => {
            return refuse(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                RpcError::Invalid(format!("request body larger than {limit} bytes")),
            )
        }
        Err(error) => {
            return refuse(
                axum::http::StatusCode::BAD_REQUEST,
                RpcError::Invalid(format!("failed to read the request body: {error}")),
            )
        }
    };
    if let Err(error) = verify_body(claimed.as_deref().unwrap_or_default(), &bytes) {
        return refuse(
            axum::http::StatusCode::FORBIDDEN,
            RpcError::Unauthenticated(error.to_string()),
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn raft(
    State(server): State<Arc<Server>>,
    Json(message): Json<RaftMessage>,
) -> Json<Result<RaftReply, RpcError>> {
    Json(server.handle_raft(message).await)
}

async fn install_snapshot(
    State(server): State<Arc<Server>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Json<Result<RaftReply, RpcError>> {
    let vote = paths::vote_from_query(uri.query().unwrap_or_default())
        .ok_or_else(|| RpcError::Invalid("missing vote".to_string()))
        .and_then(|text| {
            serde_json::from_str(&text).map_err(|error| RpcError::Invalid(error.to_string()))
        });
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
) -> Json<Result<NodeRpcReply, RpcError>> {
    Json(server.node_register(node).await)
}

async fn node_heartbeat(
    State(server): State<Arc<Server>>,
    Json(beat): Json<NodeHeartbeat>,
) -> Json<Result<NodeRpcReply, RpcError>> {
    Json(server.node_heartbeat(beat).await)
}

async fn remove_peer(
    State(server): State<Arc<Server>>,
    Json(node_id): Json<String>,
) -> Json<Result<(), RpcError>> {
    Json(server.remove_server_by_node_id(&node_id).await)
}

async fn raft_status(
    State(server): State<Arc<Server>>,
) -> Json<Result<caravan_rpc::RaftStatus, RpcError>> {
    Json(Ok(caravan_rpc::RaftStatus {
        initialized: server.is_initialized().await,
    }))
}

async fn read_index(State(server): State<Arc<Server>>) -> Json<Result<u64, RpcError>> {
    Json(server.read_index().await)
}

async fn node_events(
    State(server): State<Arc<Server>>,
    Json(report): Json<NodeEvents>,
) -> Json<Result<u64, RpcError>> {
    Json(server.node_emit_events(report).await)
}

async fn node_allocs(
    State(server): State<Arc<Server>>,
    Json(request): Json<NodeAllocsRequest>,
) -> Json<Result<NodeAllocsReply, RpcError>> {
    Json(server.node_allocs(request).await)
}

async fn node_allocs_update(
    State(server): State<Arc<Server>>,
    Json(update): Json<NodeAllocsUpdate>,
) -> Json<Result<u64, RpcError>> {
    Json(server.node_update_allocs(update).await)
}
