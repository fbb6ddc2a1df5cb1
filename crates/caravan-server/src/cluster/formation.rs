//! Forming a multi-server cluster: `bootstrap_expect` servers that find
//! each other by gossip bootstrap Raft together with the same voter set.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::gossip::Gossip;
use crate::cluster::membership::MemberView;
use crate::server::Server;

pub use caravan_rpc::paths::RAFT_STATUS as RAFT_STATUS_PATH;
pub use caravan_rpc::RaftStatus;

/// Waits until `expect` servers of this region are alive in gossip, checks
/// that none of them already belongs to a cluster, and bootstraps Raft with
/// exactly those voters. Every server runs this with the same inputs and so
/// proposes the same configuration; a server that finds an existing
/// cluster waits to be added by its leader instead.
pub async fn bootstrap_expect(
    server: Arc<Server>,
    gossip: Arc<Gossip>,
    expect: u32,
    rpc: caravan_rpc::RpcClient,
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
                let status: Result<RaftStatus, _> = rpc
                    .get(&peer.rpc_addr, RAFT_STATUS_PATH, Duration::from_secs(2))
                    .await;
                match status {
                    Ok(status) => someone_initialized |= status.initialized,
                    // Unreachable (or refusing us) right now: do not
                    // bootstrap around it.
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
