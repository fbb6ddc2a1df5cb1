//! Passing a request on to the leader, as Nomad's RPC layer does within
//! its `RPCHoldTimeout`.
//!
//! The decisions live here, apart from how a request travels: where a
//! request that needs the leader runs ([`Server::place_on_leader`]), and
//! which target to send it to, when to send it again and when to give up
//! ([`forward_with_hold`]). The HTTP layer forwards whole HTTP requests
//! with them; the deterministic simulation carries its requests over
//! simulated TCP with the same two functions.

use std::future::Future;
use std::time::Duration;

use caravan_rpc::RpcError;
use serde::Serialize;
use tokio::time::Instant;

use crate::error::call_error;
use crate::raft::types::ServerNode;
use crate::server::{Server, LEADER_WAIT};

/// A request is forwarded at most this many times, so it never circles
/// between servers that disagree about who leads.
pub const MAX_FORWARD_HOPS: u32 = 2;

/// Where a request that needs the leader runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this server, the ready leader.
    Here,
    /// On the leader, another server.
    Leader(ServerNode),
}

/// Why one attempt to pass a request on failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure<E> {
    /// It never reached the target (refused, no route): sending it again
    /// cannot make it run twice.
    NotSent(E),
    /// It may have reached the target and run there (the connection broke
    /// or timed out after the request went out).
    MaybeRan(E),
}

/// Why forwarding gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardFailure<E> {
    /// A request that must not run twice failed after it may have run; it
    /// was not sent again.
    MaybeRan { target: String, error: E },
    /// No target took it within the hold time: the last attempt's target
    /// and error, if any attempt was made.
    NoTarget(Option<(String, E)>),
}

impl Server {
    /// Where a request that needs the leader runs, having been forwarded
    /// `hops` times already: here on the ready leader; otherwise on the
    /// leader, waited for up to the hold time. `NoLeader` when none
    /// appears, or when the request has been forwarded too often.
    pub async fn place_on_leader(&self, hops: u32) -> Result<Placement, RpcError> {
        if self.is_ready_leader() {
            return Ok(Placement::Here);
        }
        if hops >= MAX_FORWARD_HOPS {
            return Err(RpcError::NoLeader);
        }
        match self.wait_for_leader(LEADER_WAIT).await {
            Some(leader) if leader.id == self.node.id => Ok(Placement::Here),
            Some(leader) => Ok(Placement::Leader(leader)),
            None => Err(RpcError::NoLeader),
        }
    }

    /// Whether this server is the ready leader, waiting (up to the hold
    /// time) for a leader when none is known; `Err` when none appears.
    pub(crate) async fn leads_or_waits(&self) -> Result<bool, RpcError> {
        Ok(self.place_on_leader(0).await? == Placement::Here)
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

/// Sends a request to the first of `targets` (RPC addresses) that takes
/// it, through `send`, holding it through a failover as Nomad's RPC hold
/// time does: when no target takes it, a server (`via`) waits for the next
/// leader and tries that one, until [`LEADER_WAIT`] has passed. The new
/// leader may be `via` itself; the request then comes back to its own RPC
/// port and runs there. Without a server (a client-only agent) each target
/// is tried once.
///
/// A request that may run twice safely (`idempotent`: a read) is sent
/// again after any failure. Any other is sent again only when it never
/// reached its target: one whose connection failed after it went out may
/// have been applied, and applying it twice could bootstrap twice or
/// dispatch twice.
pub async fn forward_with_hold<T, E, F, Fut>(
    via: Option<&Server>,
    targets: Vec<String>,
    idempotent: bool,
    mut send: F,
) -> Result<T, ForwardFailure<E>>
where
    F: FnMut(&str) -> Fut,
    Fut: Future<Output = Result<T, SendFailure<E>>>,
{
    let deadline = Instant::now() + LEADER_WAIT;
    let mut targets = targets;
    let mut last = None;
    loop {
        for target in &targets {
            match send(target).await {
                Ok(reply) => return Ok(reply),
                Err(SendFailure::MaybeRan(error)) if !idempotent => {
                    return Err(ForwardFailure::MaybeRan {
                        target: target.clone(),
                        error,
                    })
                }
                Err(SendFailure::NotSent(error) | SendFailure::MaybeRan(error)) => {
                    last = Some((target.clone(), error));
                }
            }
        }
        let Some(server) = via else { break };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match server.wait_for_leader(remaining).await {
            Some(leader) if !remaining.is_zero() => targets = vec![leader.rpc_addr],
            _ => break,
        }
    }
    Err(ForwardFailure::NoTarget(last))
}
