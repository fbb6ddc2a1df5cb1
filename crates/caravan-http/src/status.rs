//! `/v1/status/`: the leader and the Raft peers.

use caravan_api_types::operator::RaftConfiguration;

use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/v1/status/leader",
            endpoints: vec![endpoint(
                GET,
                Acl::None,
                Consistency::LeaderUnlessStale,
                leader,
            )],
            wrong_method: http::StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/status/peers",
            endpoints: vec![endpoint(
                GET,
                Acl::None,
                Consistency::LeaderUnlessStale,
                peers,
            )],
            wrong_method: http::StatusCode::METHOD_NOT_ALLOWED,
        },
    ]
}

/// The leader's RPC address as a JSON string (`""` when a stale read finds
/// no leader).
async fn leader(request: Request) -> Result<Reply, ApiError> {
    let server = request.server()?;
    let address = server
        .leader()
        .map(|node| node.rpc_addr)
        .unwrap_or_default();
    Reply::json(&address)
}

/// The RPC addresses of every server in the Raft configuration.
async fn peers(request: Request) -> Result<Reply, ApiError> {
    let server = request.server()?;
    let (_, members) = server.raft_configuration();
    let addresses: Vec<String> = members.into_iter().map(|m| m.node.rpc_addr).collect();
    Reply::json(&addresses)
}

/// Shared by `/v1/operator/raft/configuration`.
pub fn raft_configuration(request: &Request) -> Result<RaftConfiguration, ApiError> {
    let server = request.server()?;
    let (index, members) = server.raft_configuration();
    Ok(RaftConfiguration {
        index,
        servers: members
            .into_iter()
            .map(|member| caravan_api_types::operator::RaftServer {
                id: member.node.id,
                node: member.node.name,
                address: member.node.rpc_addr,
                leader: member.leader,
                voter: member.voter,
                raft_protocol: "3".to_string(),
            })
            .collect(),
    })
}
