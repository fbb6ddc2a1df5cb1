//! The typed error every RPC answers with.

use serde::{Deserialize, Serialize};

/// Why a server refused or failed an RPC. Travels as JSON inside
/// `Result<T, RpcError>`, so a caller reacts to the variant (a client
/// registers again on [`RpcError::NodeNotFound`]) rather than to text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RpcError {
    #[error("No cluster leader")]
    NoLeader,
    /// The node is not registered (or was purged): register again.
    #[error("node not found")]
    NodeNotFound,
    /// The caller's node secret is not the node's.
    #[error("node secret ID does not match")]
    SecretMismatch,
    /// The request itself is wrong (a bad ID, status or value).
    #[error("{0}")]
    Invalid(String),
    /// The state refused the change (its own validation).
    #[error("{0}")]
    Refused(String),
    /// A server-only route called without a valid cluster key.
    #[error("Permission denied: {0}")]
    Unauthenticated(String),
    /// A follower could not hand the request to the leader.
    #[error("failed to forward to the leader: {0}")]
    Forward(String),
    #[error("{0}")]
    Internal(String),
}

impl RpcError {
    /// Whether another server might answer differently (a client fails
    /// over on these instead of giving up).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RpcError::NoLeader | RpcError::Forward(_))
    }
}
