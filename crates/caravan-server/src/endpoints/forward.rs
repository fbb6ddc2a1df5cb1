//! Passing a request on to the leader, as Nomad's RPC layer does within
//! its `RPCHoldTimeout`.

use std::time::Duration;

use caravan_rpc::RpcError;
use serde::Serialize;
use tokio::time::Instant;

use crate::error::call_error;
use crate::server::{Server, LEADER_WAIT};

impl Server {
    /// Whether this server is the ready leader, waiting (up to the hold
    /// time) for a leader when none is known; `Err` when none appears.
    pub(crate) async fn leads_or_waits(&self) -> Result<bool, RpcError> {
        if self.is_ready_leader() {
            return Ok(true);
        }
        match self.wait_for_leader(LEADER_WAIT).await {
            Some(leader) => Ok(leader.id == self.node.id),
            None => Err(RpcError::NoLeader),
        }
    }

    /// Hands an RPC to the leader, waiting (within the hold time) for one
    /// to be elected, and retrying while the leader changes under it, as
    /// Nomad's `RPCHoldTimeout` does.
    pub(crate) async fn forward_to_leader<T: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, RpcError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = self
                .wait_for_leader(remaining)
                .await
                .ok_or(RpcError::NoLeader)?;
            if leader.id == self.node.id {
                return Err(RpcError::NoLeader);
            }
            match self
                .rpc
                .post(&leader.rpc_addr, path, body, LEADER_WAIT)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(error) if error.is_retryable() && Instant::now() < deadline => {
                    tracing::debug!(%error, "forwarding to the leader failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(call_error(error)),
            }
        }
    }
}
