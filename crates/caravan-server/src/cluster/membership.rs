//! What the cluster knows of its servers from gossip: the view autopilot
//! and cluster formation read, which gossip provides.

use crate::raft::types::ServerNode;

/// A server's gossip status, as Serf names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerfStatus {
    Alive,
    Leaving,
    Left,
    Failed,
    /// Not known to gossip at all.
    None,
}

impl SerfStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SerfStatus::Alive => "alive",
            SerfStatus::Leaving => "leaving",
            SerfStatus::Left => "left",
            SerfStatus::Failed => "failed",
            SerfStatus::None => "none",
        }
    }
}

/// What autopilot needs from gossip.
pub trait MemberView: Send + Sync + 'static {
    /// The gossip status of the server with this node UUID.
    fn serf_status(&self, node_id: &str) -> SerfStatus;
    /// Servers of this region that gossip reports alive.
    fn alive_servers(&self) -> Vec<ServerNode>;
    /// The build version a server reports.
    fn version_of(&self, node_id: &str) -> String;
}

/// A cluster without gossip: only this server exists.
pub struct NoGossip;

impl MemberView for NoGossip {
    fn serf_status(&self, _: &str) -> SerfStatus {
        SerfStatus::Alive
    }
    fn alive_servers(&self) -> Vec<ServerNode> {
        Vec::new()
    }
    fn version_of(&self, _: &str) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serf_status_names() {
        assert_eq!(SerfStatus::Alive.as_str(), "alive");
        assert_eq!(SerfStatus::None.as_str(), "none");
    }
}
