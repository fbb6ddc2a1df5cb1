//! Server-to-server Raft traffic, behind a small trait so that tests can put
//! a simulated network in place of TCP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};

use crate::raft::types::{RaftId, ServerNode, Snapshot, SnapshotData, TypeConfig, Vote};

/// One Raft message from one server to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftMessage {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    /// A vote that changes no term: a server cut off from the leader asks
    /// whether it could win before disturbing anyone.
    PreVote(VoteRequest<TypeConfig>),
    /// A whole snapshot; `data` holds the snapshot file's bytes, whose
    /// header carries Raft's metadata.
    InstallSnapshot {
        vote: Vote,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// The answer to a [`RaftMessage`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
}

/// Why a message got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Nothing listens there (connection refused, no route).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The exchange failed part way.
    #[error("network error: {0}")]
    Network(String),
    /// The peer answered with an error.
    #[error("remote error: {0}")]
    Remote(String),
    #[error("timed out")]
    Timeout,
}

/// Carries Raft messages between servers.
pub trait RaftTransport: Send + Sync + 'static {
    fn send(
        &self,
        target: &ServerNode,
        message: RaftMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>>;

    /// Asks `target`, the leader, for its read index (Raft's ReadIndex:
    /// its commit index, confirmed by a quorum), for a follower's read
    /// barrier.
    fn read_index(
        &self,
        target: &ServerNode,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<u64, TransportError>>;
}

/// openraft's network factory over a [`RaftTransport`].
#[derive(Clone)]
pub struct Network {
    transport: Arc<dyn RaftTransport>,
}

impl Network {
    pub fn new(transport: Arc<dyn RaftTransport>) -> Self {
        Self { transport }
    }
}

/// A connection to one peer.
pub struct PeerClient {
    transport: Arc<dyn RaftTransport>,
    target: RaftId,
    node: ServerNode,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftId, node: &ServerNode) -> PeerClient {
        PeerClient {
            transport: Arc::clone(&self.transport),
            target,
            node: node.clone(),
        }
    }
}

impl PeerClient {
    async fn call(
        &self,
        message: RaftMessage,
        action: RPCTypes,
        timeout: Duration,
    ) -> Result<RaftReply, RPCError<TypeConfig>> {
        let reply = self
            .transport
            .send(&self.node, message, timeout)
            .await
            .map_err(|error| match error {
                TransportError::Unreachable(text) => {
                    RPCError::Unreachable(Unreachable::from_string(text))
                }
                TransportError::Timeout => RPCError::Timeout(Timeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout,
                }),
                other => RPCError::Network(NetworkError::from_string(other.to_string())),
            })?;
        Ok(reply)
    }
}

fn unexpected() -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(
        "peer answered with the wrong message type".to_string(),
    ))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RaftMessage::Append(request),
                RPCTypes::AppendEntries,
                option.soft_ttl(),
            )
            .await?
        {
            RaftReply::Append(reply) => Ok(reply),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RaftMessage::Vote(request),
                RPCTypes::Vote,
                option.soft_ttl(),
            )
            .await?
        {
            RaftReply::Vote(reply) => Ok(reply),
            _ => Err(unexpected()),
        }
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RaftMessage::PreVote(request),
                RPCTypes::Vote,
                option.soft_ttl(),
            )
            .await?
        {
            RaftReply::Vote(reply) => Ok(reply),
            _ => Err(unexpected()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let message = RaftMessage::InstallSnapshot {
            vote,
            data: snapshot.snapshot.into_inner(),
        };
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = self.call(message, RPCTypes::InstallSnapshot, option.hard_ttl()) => {
                match reply? {
                    RaftReply::InstallSnapshot(reply) => Ok(reply),
                    _ => Err(unexpected().into()),
                }
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        request: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RaftMessage::TransferLeader(request),
                RPCTypes::TransferLeader,
                option.soft_ttl(),
            )
            .await?
        {
            RaftReply::TransferLeader(reply) => Ok(reply),
            _ => Err(unexpected()),
        }
    }
}

/// The real transport: HTTP on the peers' RPC port, signed with the
/// cluster key when there is one.
pub struct HttpTransport {
    client: caravan_rpc::RpcClient,
}

impl HttpTransport {
    pub fn new(client: caravan_rpc::RpcClient) -> Self {
        Self { client }
    }
}

/// Path of the Raft endpoint on the RPC listener.
pub use caravan_rpc::paths::RAFT as RAFT_PATH;
/// Snapshots travel as a raw body with the vote in a header, since JSON
/// would turn their bytes into arrays of numbers.
pub use caravan_rpc::paths::RAFT_SNAPSHOT as SNAPSHOT_PATH;

impl RaftTransport for HttpTransport {
    fn send(
        &self,
        target: &ServerNode,
        message: RaftMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let post = http::Method::POST;
        let request = match message {
            RaftMessage::InstallSnapshot { vote, data } => {
                let vote = match serde_json::to_string(&vote) {
                    Ok(vote) => vote,
                    Err(error) => {
                        let error = TransportError::Network(error.to_string());
                        return Box::pin(async move { Err(error) });
                    }
                };
                self.client.request(
                    post,
                    &target.rpc_addr,
                    &caravan_rpc::paths::snapshot_path(&vote),
                    data,
                )
            }
            message => {
                let body = match serde_json::to_vec(&message) {
                    Ok(body) => body,
                    Err(error) => {
                        let error = TransportError::Network(error.to_string());
                        return Box::pin(async move { Err(error) });
                    }
                };
                self.client
                    .request(post, &target.rpc_addr, RAFT_PATH, body)
                    .header(http::header::CONTENT_TYPE, "application/json")
            }
        };
        let client = self.client.clone();
        let server = target.rpc_addr.clone();
        Box::pin(async move {
            client
                .send::<RaftReply>(&server, request, timeout)
                .await
                .map_err(transport_error)
        })
    }

    fn read_index(
        &self,
        target: &ServerNode,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<u64, TransportError>> {
        let client = self.client.clone();
        let server = target.rpc_addr.clone();
        Box::pin(async move {
            client
                .get::<u64>(&server, caravan_rpc::paths::RAFT_READ_INDEX, timeout)
                .await
                .map_err(transport_error)
        })
    }
}

fn transport_error(error: caravan_rpc::CallError) -> TransportError {
    match error {
        caravan_rpc::CallError::Timeout { .. } => TransportError::Timeout,
        caravan_rpc::CallError::Unreachable { message, .. } => TransportError::Unreachable(message),
        caravan_rpc::CallError::Protocol { message, .. } => TransportError::Network(message),
        caravan_rpc::CallError::Remote(remote) => TransportError::Remote(remote.to_string()),
    }
}
