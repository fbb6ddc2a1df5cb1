//! The client's calls to servers: register, heartbeat, events, allocations
//! and allocation updates, over the RPC port. The node simulator uses the
//! same calls. Clients prove themselves with their node secret, not the
//! cluster key: their `RpcClient` carries none.

use std::time::Duration;

use caravan_api_types::node::Node;
use caravan_rpc::{
    paths, CallError, NodeAllocsReply, NodeAllocsRequest, NodeAllocsUpdate, NodeEvents,
    NodeHeartbeat, NodeRpcReply, RpcClient,
};

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

/// How much longer than the requested wait a blocking allocation query may
/// take before the client gives up on the server: the server's jitter (up
/// to 1/16 of the wait) plus time to answer.
fn allocs_timeout(wait_ms: u64) -> Duration {
    let wait = Duration::from_millis(wait_ms);
    wait + wait / 16 + RPC_TIMEOUT
}

/// The node's allocations (Nomad's `Node.GetClientAllocs`), held by the
/// server until they move past `request.min_index` or `request.wait_ms`
/// passes.
pub async fn get_allocs(
    rpc: &RpcClient,
    server: &str,
    request: &NodeAllocsRequest,
) -> Result<NodeAllocsReply, RpcError> {
    let timeout = allocs_timeout(request.wait_ms);
    rpc.post(server, paths::NODE_ALLOCS, request, timeout).await
}

/// Reports a batch of allocation updates (Nomad's `Node.UpdateAlloc`);
/// answers the index of the write.
pub async fn update_allocs(
    rpc: &RpcClient,
    server: &str,
    update: &NodeAllocsUpdate,
) -> Result<u64, RpcError> {
    rpc.post(server, paths::NODE_ALLOCS_UPDATE, update, RPC_TIMEOUT)
        .await
}
