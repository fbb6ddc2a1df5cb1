//! The Raft-facing side of a server: messages from peers, the Raft
//! configuration and its changes, replication progress, read indexes and
//! the figures `/v1/agent/self` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use caravan_api_types::sync::lock;
use caravan_rpc::{paths, RpcError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::Instant;

use crate::error::ServerError;
use crate::raft::state_machine::split_snapshot;
use crate::raft::transport::{RaftMessage, RaftReply};
use crate::raft::types::{
    raft_id_of, FollowerProgress, RaftId, RaftMember, ServerNode, MAX_RAFT_NUMBER,
};
use crate::server::{Server, LEADER_WAIT};

impl Server {
    /// Refuses Raft messages whose terms or indexes no real cluster
    /// reaches, before openraft sees them.
    fn check_raft_bounds(message: &RaftMessage) -> Result<(), RpcError> {
        fn log_id_ok(log_id: Option<&crate::raft::types::LogId>) -> bool {
            log_id
                .is_none_or(|id| id.index < MAX_RAFT_NUMBER && id.leader_id.term < MAX_RAFT_NUMBER)
        }
        fn vote_ok(vote: &crate::raft::types::Vote) -> bool {
            vote.leader_id.term < MAX_RAFT_NUMBER
        }
        let ok = match message {
            RaftMessage::Append(request) => {
                vote_ok(&request.vote)
                    && log_id_ok(request.prev_log_id.as_ref())
                    && log_id_ok(request.leader_commit.as_ref())
                    && request
                        .entries
                        .iter()
                        .all(|entry| log_id_ok(Some(&entry.log_id)))
            }
            RaftMessage::Vote(request) | RaftMessage::PreVote(request) => {
                vote_ok(&request.vote) && log_id_ok(request.last_log_id.as_ref())
            }
            RaftMessage::InstallSnapshot { vote, .. } => vote_ok(vote),
            RaftMessage::TransferLeader(request) => {
                vote_ok(request.from_leader()) && log_id_ok(request.last_log_id())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(RpcError::Invalid(format!(
                "raft message with a term or index beyond {MAX_RAFT_NUMBER} refused"
            )))
        }
    }

    /// Handles a Raft message from a peer.
    pub async fn handle_raft(&self, message: RaftMessage) -> Result<RaftReply, RpcError> {
        Self::check_raft_bounds(&message)?;
        let failed = |error: String| RpcError::Internal(error);
        match message {
            RaftMessage::Append(request) => {
                let reply = self
                    .raft
                    .append_entries(request)
                    .await
                    .map_err(|error| failed(error.to_string()))?;
                *lock(&self.last_leader_contact) = Some(Instant::now());
                Ok(RaftReply::Append(reply))
            }
            RaftMessage::Vote(request) => self
                .raft
                .vote(request)
                .await
                .map(RaftReply::Vote)
                .map_err(|error| failed(error.to_string())),
            RaftMessage::PreVote(request) => self
                .raft
                .pre_vote(request)
                .await
                .map(RaftReply::Vote)
                .map_err(|error| failed(error.to_string())),
            RaftMessage::InstallSnapshot { vote, data } => {
                let (meta, _) = split_snapshot(&data).map_err(|error| failed(error.to_string()))?;
                // The snapshot's own log ids are bounded like any message's.
                let in_bounds = |log_id: Option<&crate::raft::types::LogId>| {
                    log_id.is_none_or(|id| {
                        id.index < MAX_RAFT_NUMBER && id.leader_id.term < MAX_RAFT_NUMBER
                    })
                };
                if !in_bounds(meta.last_log_id.as_ref())
                    || !in_bounds(meta.last_membership.log_id().as_ref())
                {
                    return Err(RpcError::Invalid(format!(
                        "snapshot with a term or index beyond {MAX_RAFT_NUMBER} refused"
                    )));
                }
                let snapshot = crate::raft::types::Snapshot {
                    meta,
                    snapshot: std::io::Cursor::new(data),
                };
                let reply = self
                    .raft
                    .install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(|error| failed(error.to_string()))?;
                *lock(&self.last_leader_contact) = Some(Instant::now());
                Ok(RaftReply::InstallSnapshot(reply))
            }
            RaftMessage::TransferLeader(request) => self
                .raft
                .handle_transfer_leader(request)
                .await
                .map(RaftReply::TransferLeader)
                .map_err(|error| failed(error.to_string())),
        }
    }

    /// The Raft configuration: its index and every member.
    pub fn raft_configuration(&self) -> (u64, Vec<RaftMember>) {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<RaftId> = membership.voter_ids().collect();
        let index = metrics
            .membership_config
            .log_id()
            .map_or(0, |log_id| log_id.index);
        let members = membership
            .nodes()
            .map(|(id, node)| RaftMember {
                node: node.clone(),
                voter: voters.contains(id),
                leader: metrics.current_leader == Some(*id),
            })
            .collect();
        (index, members)
    }

    /// Raft figures for `/v1/agent/self`, named as hashicorp/raft names them.
    pub fn raft_stats(&self) -> BTreeMap<String, String> {
        let metrics = self.metrics();
        let (config_index, members) = self.raft_configuration();
        let last_log = self.log_store.last_log_id();
        let snapshot = self.state_machine.snapshot_log_id();
        let last_contact = match self.last_contact() {
            Some(elapsed) if !elapsed.is_zero() => {
                caravan_api_types::duration::format_go_duration(elapsed)
            }
            Some(_) => "0".to_string(),
            None => "never".to_string(),
        };
        let state = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Follower",
            ServerState::Shutdown => "Shutdown",
        };
        let configuration = members
            .iter()
            .map(|member| {
                format!(
                    "{{Suffrage:{} ID:{} Address:{}}}",
                    if member.voter { "Voter" } else { "Nonvoter" },
                    member.node.id,
                    member.node.rpc_addr
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let applied = metrics.last_applied.map_or(0, |log_id| log_id.index);
        let committed = metrics
            .local_committed
            .map_or(applied, |log_id| log_id.index);
        let pending = committed.saturating_sub(applied);
        [
            ("state", state.to_string()),
            ("term", metrics.current_term.to_string()),
            (
                "last_log_index",
                last_log.map_or(0, |l| l.index).to_string(),
            ),
            (
                "last_log_term",
                last_log.map_or(0, |l| l.leader_id.term).to_string(),
            ),
            ("commit_index", committed.to_string()),
            ("applied_index", applied.to_string()),
            ("fsm_pending", pending.to_string()),
            (
                "last_snapshot_index",
                snapshot.map_or(0, |l| l.index).to_string(),
            ),
            (
                "last_snapshot_term",
                snapshot.map_or(0, |l| l.leader_id.term).to_string(),
            ),
            ("last_contact", last_contact),
            ("num_peers", members.len().saturating_sub(1).to_string()),
            ("latest_configuration", format!("[{configuration}]")),
            ("latest_configuration_index", config_index.to_string()),
            ("protocol_version", "3".to_string()),
            ("protocol_version_min", "0".to_string()),
            ("protocol_version_max", "3".to_string()),
            ("snapshot_version_min", "0".to_string()),
            ("snapshot_version_max", "1".to_string()),
            ("logstore_backend", "redb".to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    /// Whether this server has a Raft configuration (bootstrapped or
    /// joined).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Bootstraps a multi-server cluster with exactly these voters; every
    /// server that forms the cluster calls this with the same set.
    pub async fn initialize_cluster(&self, members: Vec<ServerNode>) -> Result<(), ServerError> {
        let members: BTreeMap<RaftId, ServerNode> = members
            .into_iter()
            .map(|node| (raft_id_of(&node.id), node))
            .collect();
        self.raft
            .initialize(members)
            .await
            .map_err(|error| ServerError::Raft(error.to_string()))
    }

    /// Adds a server as a non-voter (leader only); autopilot promotes it.
    pub async fn add_nonvoter(&self, node: ServerNode) -> Result<(), ServerError> {
        self.raft
            .add_learner(raft_id_of(&node.id), node, false)
            .await
            .map(|_| ())
            .map_err(|error| ServerError::Raft(error.to_string()))
    }

    /// Makes a non-voter a voter (leader only).
    pub async fn promote(&self, id: RaftId) -> Result<(), ServerError> {
        let change = ChangeMembers::<RaftId, ServerNode>::AddVoterIds(BTreeSet::from([id]));
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(|error| ServerError::Raft(error.to_string()))
    }

    /// Removes a server from the Raft configuration entirely (leader only).
    /// Removing the leader makes it step down once the change commits.
    pub async fn remove_server(&self, id: RaftId) -> Result<(), ServerError> {
        let (is_voter, is_member, other_voter) = {
            let metrics = self.metrics();
            let membership = metrics.membership_config.membership();
            let voters: Vec<RaftId> = membership.voter_ids().collect();
            let is_member = membership.nodes().any(|(node_id, _)| *node_id == id);
            (
                voters.contains(&id),
                is_member,
                voters.into_iter().find(|voter| *voter != id),
            )
        };
        if !is_member {
            return Err(ServerError::Raft(format!(
                "server {id} is not in the Raft configuration"
            )));
        }
        if id == self.raft_id {
            // The leader removes itself by handing leadership to another
            // voter, which then removes it.
            let to = other_voter
                .ok_or_else(|| ServerError::Raft("cannot remove the only voter".to_string()))?;
            self.transfer_leadership(to).await?;
            let node_id = self.node.id.clone();
            let deadline = Instant::now() + LEADER_WAIT;
            loop {
                if let Some(leader) = self.leader() {
                    if leader.id != node_id {
                        return self
                            .forward_to_leader::<_, ()>(paths::RAFT_REMOVE_PEER, &node_id)
                            .await
                            .map_err(|error| ServerError::Raft(error.to_string()));
                    }
                }
                if Instant::now() >= deadline {
                    return Err(ServerError::NoLeader);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // A voter is removed with its node in one change (retain = false).
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(|error| ServerError::Raft(error.to_string()))
    }

    /// Removes the server with this node UUID from Raft, on the leader (a
    /// follower passes the request on).
    pub async fn remove_server_by_node_id(&self, node_id: &str) -> Result<(), RpcError> {
        if !self.leads_or_waits().await? {
            return self
                .forward_to_leader(paths::RAFT_REMOVE_PEER, &node_id.to_string())
                .await;
        }
        Ok(self.remove_server(raft_id_of(node_id)).await?)
    }

    /// Hands leadership to another voter.
    pub async fn transfer_leadership(&self, to: RaftId) -> Result<(), ServerError> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|error| ServerError::Raft(error.to_string()))
    }

    /// Per-follower replication progress on the leader: matched log index
    /// and term, and time since the follower last acknowledged.
    pub fn follower_progress(&self) -> BTreeMap<RaftId, FollowerProgress> {
        use openraft::Instant as _;
        let metrics = self.metrics();
        let mut progress = BTreeMap::new();
        if let Some(replication) = &metrics.replication {
            for (id, matched) in replication {
                progress.insert(
                    *id,
                    FollowerProgress {
                        last_index: matched.map_or(0, |log_id| log_id.index),
                        last_term: matched.map_or(0, |log_id| log_id.leader_id.term),
                        last_contact: None,
                    },
                );
            }
        }
        if let Some(heartbeats) = &metrics.heartbeat {
            for (id, acked) in heartbeats {
                if let (Some(entry), Some(acked)) = (progress.get_mut(id), acked) {
                    entry.last_contact = Some(acked.elapsed());
                }
            }
        }
        progress
    }

    /// The leader's last log index and current term.
    pub fn leader_position(&self) -> (u64, u64) {
        let metrics = self.metrics();
        (
            self.log_store
                .last_log_id()
                .map_or(0, |log_id| log_id.index),
            metrics.current_term,
        )
    }

    /// The leader's commit index, confirmed by a quorum (Raft's ReadIndex).
    pub async fn read_index(&self) -> Result<u64, RpcError> {
        self.raft
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
            .map(|read| read.index())
            .map_err(|error| RpcError::Internal(error.to_string()))
    }

    /// Brings this server's state up to everything the leader had committed
    /// when this was called: a follower asks the leader for its read index
    /// and waits to apply up to it. Lets a follower answer as of "now".
    pub async fn read_barrier(&self) -> Result<(), RpcError> {
        if self.is_ready_leader() {
            return Ok(());
        }
        let leader = self.leader().ok_or(RpcError::NoLeader)?;
        let index = self
            .transport
            .read_index(&leader, LEADER_WAIT)
            .await
            .map_err(|error| RpcError::Forward(error.to_string()))?;
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|error| RpcError::Internal(error.to_string()))
    }
}
