//! Autopilot on the leader (hashicorp/raft-autopilot's rules, as Nomad uses
//! them): server health from real replication progress and gossip status,
//! promotion of stable non-voters, removal of dead servers, and adding
//! servers that gossip finds but Raft does not yet know.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api_types::operator::{AutopilotConfiguration, OperatorHealthReply, ServerHealth};
use caravan_api_types::sync::lock;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

pub use crate::cluster::membership::{MemberView, NoGossip, SerfStatus};
use crate::error::ServerError;
use crate::leader::context::LeaderServer;
use crate::leader::lifecycle::LeaderToken;
use crate::raft::types::{raft_id_of, FollowerProgress, RaftId, RaftMember, ServerNode};

/// What autopilot needs of the server it runs on: the Raft configuration,
/// replication progress, and the membership changes it makes.
pub trait AutopilotServer: LeaderServer {
    /// This server as Raft knows it.
    fn node(&self) -> &ServerNode;
    /// Autopilot's state on this server.
    fn autopilot(&self) -> &Autopilot;
    /// The Raft configuration: its index and every member.
    fn raft_configuration(&self) -> (u64, Vec<RaftMember>);
    /// Per-follower replication progress on the leader.
    fn follower_progress(&self) -> BTreeMap<RaftId, FollowerProgress>;
    /// The leader's last log index and current term.
    fn leader_position(&self) -> (u64, u64);
    /// Adds a server as a non-voter.
    fn add_nonvoter(&self, node: ServerNode) -> BoxFuture<'_, Result<(), ServerError>>;
    /// Makes a non-voter a voter.
    fn promote(&self, id: RaftId) -> BoxFuture<'_, Result<(), ServerError>>;
    /// Removes a server from the Raft configuration.
    fn remove_server(&self, id: RaftId) -> BoxFuture<'_, Result<(), ServerError>>;
}

/// How often autopilot looks at the servers.
pub const AUTOPILOT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Stability {
    /// node id → (healthy, since when)
    since: HashMap<String, (bool, DateTime<Utc>)>,
}

/// Autopilot's state on this server.
pub struct Autopilot {
    members: Arc<dyn MemberView>,
    stability: Mutex<Stability>,
    last_health: Mutex<Option<OperatorHealthReply>>,
    started: tokio::time::Instant,
}

impl Autopilot {
    pub fn new(members: Arc<dyn MemberView>) -> Self {
        Self {
            members,
            stability: Mutex::new(Stability::default()),
            last_health: Mutex::new(None),
            started: tokio::time::Instant::now(),
        }
    }

    pub fn members(&self) -> &Arc<dyn MemberView> {
        &self.members
    }

    /// Computes every server's health now (leader only).
    pub fn health<S: AutopilotServer + ?Sized>(
        &self,
        server: &S,
        config: &AutopilotConfiguration,
    ) -> OperatorHealthReply {
        let (_, members) = server.raft_configuration();
        let progress = server.follower_progress();
        let (leader_index, leader_term) = server.leader_position();
        let threshold =
            Duration::from_nanos(u64::try_from(config.last_contact_threshold).unwrap_or(0));
        let now = Utc::now();
        let mut stability = lock(&self.stability);
        let mut servers = Vec::new();
        for member in &members {
            let id = raft_id_of(&member.node.id);
            let serf = if member.node.id == server.node().id {
                SerfStatus::Alive
            } else {
                self.members.serf_status(&member.node.id)
            };
            let (last_index, last_term, last_contact) = if member.node.id == server.node().id {
                (leader_index, leader_term, Some(Duration::ZERO))
            } else {
                match progress.get(&id) {
                    Some(p) => (p.last_index, p.last_term, p.last_contact),
                    None => (0, 0, None),
                }
            };
            let healthy = leader_index > 0
                && leader_term > 0
                && matches!(serf, SerfStatus::Alive | SerfStatus::Leaving)
                && last_contact.is_some_and(|contact| contact <= threshold)
                && last_term == leader_term
                && last_index.saturating_add(config.max_trailing_logs) >= leader_index;
            let entry = stability
                .since
                .entry(member.node.id.clone())
                .or_insert((healthy, now));
            if entry.0 != healthy {
                *entry = (healthy, now);
            }
            let version = if member.node.id == server.node().id {
                String::new()
            } else {
                self.members.version_of(&member.node.id)
            };
            servers.push(ServerHealth {
                id: member.node.id.clone(),
                name: member.node.name.clone(),
                address: member.node.rpc_addr.clone(),
                serf_status: serf.as_str().to_string(),
                version,
                leader: member.leader,
                last_contact: caravan_api_types::duration::format_go_duration(
                    last_contact.unwrap_or(Duration::ZERO),
                ),
                last_term,
                last_index,
                healthy,
                voter: member.voter,
                stable_since: caravan_api_types::time::format_rfc3339_seconds(&entry.1),
            });
        }
        let known: std::collections::HashSet<&str> =
            members.iter().map(|m| m.node.id.as_str()).collect();
        stability.since.retain(|id, _| known.contains(id.as_str()));
        let voters: Vec<&ServerHealth> = servers.iter().filter(|s| s.voter).collect();
        let healthy_voters = voters.iter().filter(|s| s.healthy).count() as u64;
        let quorum = voters.len() as u64 / 2 + 1;
        let reply = OperatorHealthReply {
            healthy: servers.iter().all(|s| s.healthy),
            failure_tolerance: healthy_voters.saturating_sub(quorum),
            leader: servers
                .iter()
                .find(|s| s.leader)
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            voters: voters.iter().map(|s| s.id.clone()).collect(),
            servers,
        };
        *lock(&self.last_health) = Some(reply.clone());
        reply
    }

    /// Healthy long enough (or autopilot itself is younger than the
    /// stabilization time, when the rule is waived).
    fn stable(&self, node_id: &str, stabilization: Duration) -> bool {
        if self.started.elapsed() < stabilization {
            return lock(&self.stability)
                .since
                .get(node_id)
                .is_some_and(|(healthy, _)| *healthy);
        }
        let now = Utc::now();
        lock(&self.stability)
            .since
            .get(node_id)
            .is_some_and(|(healthy, since)| {
                *healthy && (now - *since).to_std().unwrap_or(Duration::ZERO) >= stabilization
            })
    }

    /// One round of autopilot on the leader.
    pub async fn reconcile<S: AutopilotServer + ?Sized>(
        &self,
        server: &S,
        config: &AutopilotConfiguration,
    ) {
        let health = self.health(server, config);
        let (_, members) = server.raft_configuration();
        let in_raft: BTreeMap<String, bool> = members
            .iter()
            .map(|m| (m.node.id.clone(), m.voter))
            .collect();

        // Servers gossip knows that Raft does not: add them as non-voters.
        for node in self.members.alive_servers() {
            if !in_raft.contains_key(&node.id) {
                tracing::info!(server = %node.name, "adding server to the Raft configuration as a non-voter");
                if let Err(error) = server.add_nonvoter(node).await {
                    tracing::warn!(%error, "failed to add a non-voter");
                }
                return;
            }
        }

        // Promote one stable non-voter at a time.
        let stabilization =
            Duration::from_nanos(u64::try_from(config.server_stabilization_time).unwrap_or(0));
        for status in health.servers.iter().filter(|s| !s.voter) {
            if self.stable(&status.id, stabilization) {
                tracing::info!(server = %status.name, "promoting non-voter to voter");
                if let Err(error) = server.promote(raft_id_of(&status.id)).await {
                    tracing::warn!(%error, "failed to promote a non-voter");
                }
                return;
            }
        }

        // Remove servers gossip has declared failed or left, keeping a
        // quorum and at least MinQuorum voters.
        if config.cleanup_dead_servers {
            let voters = health.servers.iter().filter(|s| s.voter).count();
            let dead: Vec<&ServerHealth> = health
                .servers
                .iter()
                .filter(|s| !s.leader && matches!(s.serf_status.as_str(), "failed" | "left"))
                .collect();
            let dead_voters = dead.iter().filter(|s| s.voter).count();
            let remaining = voters.saturating_sub(dead_voters);
            let keeps_quorum = dead_voters <= voters.saturating_sub(1) / 2;
            if !dead.is_empty() && keeps_quorum && remaining as u64 >= config.min_quorum {
                for status in dead {
                    tracing::info!(server = %status.name, status = %status.serf_status, "removing dead server");
                    if let Err(error) = server.remove_server(raft_id_of(&status.id)).await {
                        tracing::warn!(%error, "failed to remove a dead server");
                    }
                }
            }
        }
    }
}

/// Runs autopilot rounds until `token`'s term of leadership ends (a
/// leader duty). A round is skipped while the leader has lost its quorum's
/// acknowledgements (its lease), as Raft would refuse its changes.
pub async fn run<S: AutopilotServer>(server: Arc<S>, token: LeaderToken) {
    loop {
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(AUTOPILOT_INTERVAL) => {}
        }
        if !server.holds_lease() {
            continue;
        }
        let config = server
            .store()
            .snapshot()
            .autopilot_config()
            .cloned()
            .unwrap_or_else(AutopilotConfiguration::initial);
        server.autopilot().reconcile(&*server, &config).await;
    }
}
