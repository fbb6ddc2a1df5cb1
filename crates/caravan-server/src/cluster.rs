//! Forming a multi-server cluster: `bootstrap_expect` servers that find
//! each other by gossip bootstrap Raft together with the same voter set.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::autopilot::MemberView;
use crate::gossip::Gossip;
use crate::server::Server;

pub const RAFT_STATUS_PATH: &str = "/rpc/raft/status";

/// What a server says of its Raft state before a bootstrap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    pub initialized: bool,
}

/// Waits until `expect` servers of this region are alive in gossip, checks
/// that none of them already belongs to a cluster, and bootstraps Raft with
/// exactly those voters. Every server runs this with the same inputs and so
/// proposes the same configuration; a server that finds an existing
/// cluster waits to be added by its leader instead.
pub async fn bootstrap_expect(
    server: Arc<Server>,
    gossip: Arc<Gossip>,
    expect: u32,
    http: reqwest::Client,
) {
    let expect = expect as usize;
    loop {
        if server.is_initialized().await {
            return;
        }
        let mut servers = gossip.alive_servers();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        let mismatched = gossip.members().iter().any(|member| {
            member.tags.get("role").map(String::as_str) == Some("nomad")
                && member
                    .tags
                    .get("expect")
                    .is_some_and(|value| value != &expect.to_string())
        });
        if mismatched {
            tracing::error!("servers disagree on bootstrap_expect; not bootstrapping");
        } else if servers.len() >= expect {
            let mut someone_initialized = false;
            for peer in servers.iter().filter(|peer| peer.id != server.node().id) {
                let status = http
                    .get(format!("http://{}{RAFT_STATUS_PATH}", peer.rpc_addr))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                match status {
                    Ok(response) => match response.json::<RaftStatus>().await {
                        Ok(status) => someone_initialized |= status.initialized,
                        Err(_) => someone_initialized = true,
                    },
                    // Unreachable right now: do not bootstrap around it.
                    Err(_) => someone_initialized = true,
                }
            }
            if !someone_initialized && !server.is_initialized().await {
                let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
                tracing::info!(servers = ?names, "bootstrapping the cluster");
                if let Err(error) = server.initialize_cluster(servers).await {
                    tracing::warn!(%error, "bootstrap failed");
                }
                return;
            }
            if someone_initialized {
                // A cluster exists (or a peer is unsure): its leader adds us.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
