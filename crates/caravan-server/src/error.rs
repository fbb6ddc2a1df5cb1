//! Why a server operation failed.

use caravan_rpc::RpcError;

/// Why a server operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Raft(String),
    #[error("failed to forward to the leader: {0}")]
    Forward(String),
}

impl From<ServerError> for RpcError {
    fn from(error: ServerError) -> Self {
        match error {
            ServerError::NoLeader => RpcError::NoLeader,
            ServerError::Forward(text) => RpcError::Forward(text),
            ServerError::Storage(text) | ServerError::Raft(text) => RpcError::Internal(text),
        }
    }
}

/// What a failed call to another server means to the caller.
pub(crate) fn call_error(error: caravan_rpc::CallError) -> RpcError {
    match error {
        caravan_rpc::CallError::Remote(remote) => remote,
        other => RpcError::Forward(other.to_string()),
    }
}
