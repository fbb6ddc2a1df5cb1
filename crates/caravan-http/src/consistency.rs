//! Where an endpoint runs: shared by the route table and forwarding.

/// Where an endpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// On the agent that received it (agent endpoints).
    Local,
    /// On any server: locally on a server, forwarded by a client.
    AnyServer,
    /// On the leader; followers and clients forward.
    Leader,
    /// On the leader, or locally with `?stale`.
    LeaderUnlessStale,
}
