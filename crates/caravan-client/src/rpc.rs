//! The client's calls to servers: register, heartbeat and events, over the
//! RPC port. The node simulator uses the same calls. Clients prove
//! themselves with their node secret, not the cluster key: their
//! `RpcClient` carries none.

use std::time::Duration;

use caravan_api_types::node::Node;
use caravan_rpc::{paths, CallError, NodeEvents, NodeHeartbeat, NodeRpcReply, RpcClient};

const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to a server failed: [`CallError::Remote`] when the server
/// answered with an error, the other variants when it could not be
/// reached (try another).
pub type RpcError = CallError;

pub async fn register(
    rpc: &RpcClient,
    server: &str,
    node: &Node,
) -> Result<NodeRpcReply, RpcError> {
    rpc.post(server, paths::NODE_REGISTER, node, RPC_TIMEOUT)
        .await
}

pub async fn heartbeat(
    rpc: &RpcClient,
    server: &str,
    beat: &NodeHeartbeat,
) -> Result<NodeRpcReply, RpcError> {
    rpc.post(server, paths::NODE_HEARTBEAT, beat, RPC_TIMEOUT)
        .await
}

pub async fn emit_events(
    rpc: &RpcClient,
    server: &str,
    report: &NodeEvents,
) -> Result<u64, RpcError> {
    rpc.post(server, paths::NODE_EVENTS, report, RPC_TIMEOUT)
        .await
}
