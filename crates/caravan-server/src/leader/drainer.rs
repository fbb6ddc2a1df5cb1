//! The leader's node drainer (Nomad's `nomad/drainer`).
//!
//! A drain is done once every non-system allocation on the node has
//! stopped. Nothing is scheduled onto nodes yet, so every draining node has
//! nothing to migrate and its drain completes at once, leaving the node
//! ineligible as Nomad does; migrating allocations will be added here when
//! the scheduler exists.

use std::sync::Arc;
use std::time::Duration;

use caravan_state::{Command, Table};

use crate::leader::context::LeaderServer;
use crate::leader::lifecycle::LeaderToken;

/// Completes drains until `token`'s term of leadership ends (a leader
/// duty).
pub async fn run<S: LeaderServer + ?Sized>(server: Arc<S>, token: LeaderToken) {
    let mut nodes = server.store().watch(Table::Nodes);
    while !token.is_cancelled() {
        let draining: Vec<String> = server
            .store()
            .snapshot()
            .nodes()
            .filter(|node| node.is_draining())
            .map(|node| node.id.clone())
            .collect();
        let mut failed = false;
        for node_id in draining {
            let command = Command::NodeDrainComplete {
                node_id: node_id.clone(),
                deadline_reached: false,
                now: chrono::Utc::now(),
            };
            if let Err(error) = server.apply(command).await {
                tracing::warn!(%node_id, %error, "failed to complete a drain");
                failed = true;
            }
        }
        // A failed write is tried again after a while; otherwise the next
        // change to the nodes brings the drainer round.
        let retry = if failed {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3600)
        };
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            changed = nodes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(retry) => {}
        }
    }
}
