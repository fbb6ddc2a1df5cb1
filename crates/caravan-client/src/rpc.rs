//! The client's calls to servers: register and heartbeat, over the RPC
//! port. The node simulator uses the same calls.

use std::time::Duration;

use caravan_api_types::node::Node;
use caravan_server::rpc::{NODE_EVENTS_PATH, NODE_HEARTBEAT_PATH, NODE_REGISTER_PATH};
use caravan_server::{NodeEvents, NodeHeartbeat, NodeRpcReply};
use serde::de::DeserializeOwned;
use serde::Serialize;

const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to a server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The server could not be reached; try another.
    #[error("failed to reach server {server}: {message}")]
    Unreachable { server: String, message: String },
    /// The server answered with an error.
    #[error("{0}")]
    Server(String),
}

async fn call<T: Serialize, R: DeserializeOwned>(
    http: &reqwest::Client,
    server: &str,
    path: &str,
    body: &T,
) -> Result<R, RpcError> {
    let unreachable = |error: reqwest::Error| RpcError::Unreachable {
        server: server.to_string(),
        message: error.to_string(),
    };
    let response = http
        .post(format!("http://{server}{path}"))
        .timeout(RPC_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(unreachable)?;
    let reply: Result<R, String> = response.json().await.map_err(unreachable)?;
    reply.map_err(RpcError::Server)
}

pub async fn register(
    http: &reqwest::Client,
    server: &str,
    node: &Node,
) -> Result<NodeRpcReply, RpcError> {
    call(http, server, NODE_REGISTER_PATH, node).await
}

pub async fn heartbeat(
    http: &reqwest::Client,
    server: &str,
    beat: &NodeHeartbeat,
) -> Result<NodeRpcReply, RpcError> {
    call(http, server, NODE_HEARTBEAT_PATH, beat).await
}

pub async fn emit_events(
    http: &reqwest::Client,
    server: &str,
    report: &NodeEvents,
) -> Result<u64, RpcError> {
    call(http, server, NODE_EVENTS_PATH, report).await
}
