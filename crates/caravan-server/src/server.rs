//! The server role: one Raft member with its log, FSM and leader duties.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Tokio's clock, not the OS's: a simulation controls it.
use tokio::time::Instant;

use caravan_api_types::node::Node;
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use caravan_state::{Command, CommandResult, StateStore};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use caravan_rpc::{
    paths, ClusterKey, NodeEvents, NodeHeartbeat, NodeRpcReply, RpcClient, RpcError,
};

use crate::leader::heartbeat::{HeartbeatConfig, HeartbeatTracker};
use crate::leader::Leadership;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::{split_snapshot, StateMachine};
use crate::raft::transport::{Network, RaftMessage, RaftReply, RaftTransport};
use crate::raft::types::{raft_id_of, RaftId, RaftRequest, ServerNode, TypeConfig};
use crate::raft::Raft;

/// How long a request waits for a leader before failing, like Nomad's
/// `RPCHoldTimeout`.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where the Raft log, snapshots and node ID live (`data_dir/server`).
    pub data_dir: PathBuf,
    /// Node name without the region.
    pub node_name: String,
    pub region: String,
    pub datacenter: String,
    pub rpc_advertise: String,
    pub http_advertise: String,
    pub bootstrap_expect: u32,
    /// Scales Raft's timings, as Nomad's `raft_multiplier`.
    pub raft_multiplier: u32,
    pub snapshot_threshold: u64,
    pub trailing_logs: u64,
    pub default_scheduler_config: SchedulerConfiguration,
    pub autopilot: AutopilotConfiguration,
    pub heartbeat: HeartbeatConfig,
    /// Where the log and snapshots live (disk, or memory in simulations).
    pub storage: crate::raft::memory_disk::Storage,
    /// The key server-to-server calls are signed with and checked against;
    /// `None` leaves the server-only routes open (the agent warns).
    pub cluster_key: Option<Arc<ClusterKey>>,
}

/// Why a server operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Raft(String),
    #[error("failed to forward to the leader: {0}")]
    Forward(String),
}

impl From<ServerError> for RpcError {
    fn from(error: ServerError) -> Self {
        match error {
            ServerError::NoLeader => RpcError::NoLeader,
            ServerError::Forward(text) => RpcError::Forward(text),
            ServerError::Storage(text) | ServerError::Raft(text) => RpcError::Internal(text),
        }
    }
}

/// A write that went through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedWrite {
    /// The Raft index the write was committed at.
    pub index: u64,
    pub result: CommandResult,
}

/// The highest term or log index a peer may send. Real clusters never come
/// near it (a term is one election); a forged message with a term near
/// `u64::MAX` would make openraft overflow and panic at the next election,
/// and, being persisted, again at every restart.
pub const MAX_RAFT_NUMBER: u64 = 1 << 48;

/// What the leader knows of a follower's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub last_index: u64,
    pub last_term: u64,
    /// Since the follower last acknowledged the leader; `None` if never.
    pub last_contact: Option<Duration>,
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    pub node: ServerNode,
    pub voter: bool,
    pub leader: bool,
}

/// A running server.
pub struct Server {
    options: ServerOptions,
    node: ServerNode,
    raft_id: RaftId,
    raft: Raft,
    store: Arc<StateStore>,
    log_store: LogStore,
    state_machine: StateMachine,
    rpc: RpcClient,
    /// When a leader's message was last accepted (followers only).
    last_leader_contact: Mutex<Option<Instant>>,
    /// The term in which this server finished establishing leadership.
    ready_term: AtomicU64,
    heartbeats: Arc<HeartbeatTracker>,
    autopilot: crate::cluster::autopilot::Autopilot,
    /// The leader duties, started per established term.
    leadership: Leadership<Arc<Server>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Server {
    /// Opens the server's storage, starts Raft and its leader duties.
    pub async fn start(
        options: ServerOptions,
        transport: Arc<dyn RaftTransport>,
        rpc_client: reqwest::Client,
        members: Arc<dyn crate::cluster::autopilot::MemberView>,
    ) -> Result<Arc<Self>, ServerError> {
        let storage = |error: std::io::Error| ServerError::Storage(error.to_string());
        caravan_files::create_private_dir(&options.data_dir).map_err(storage)?;
        let node_id = load_or_create_node_id(&options.data_dir).map_err(storage)?;
        let raft_id = raft_id_of(&node_id);
        let node = ServerNode {
            id: node_id,
            name: format!("{}.{}", options.node_name, options.region),
            rpc_addr: options.rpc_advertise.clone(),
            http_addr: options.http_advertise.clone(),
        };
        let store = Arc::new(StateStore::new());
        let (log_store, state_machine) = match &options.storage {
            crate::raft::memory_disk::Storage::Disk => (
                LogStore::open(&options.data_dir.join("raft.redb")).map_err(storage)?,
                StateMachine::open(&options.data_dir.join("snapshots"), Arc::clone(&store))
                    .map_err(storage)?,
            ),
            crate::raft::memory_disk::Storage::Memory(disk) => (
                LogStore::in_memory(disk.clone()).map_err(storage)?,
                StateMachine::open_at(
                    crate::raft::state_machine::SnapshotPlace::Memory(disk.clone()),
                    Arc::clone(&store),
                )
                .map_err(storage)?,
            ),
        };
        let config = raft_config(&options)?;
        let raft = Raft::new(
            raft_id,
            Arc::new(config),
            Network::new(transport),
            log_store.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|error| ServerError::Raft(error.to_string()))?;

        let heartbeat = options.heartbeat;
        let options_key = options.cluster_key.clone();
        let server = Arc::new(Self {
            options,
            node,
            raft_id,
            raft,
            store,
            log_store,
            state_machine,
            rpc: RpcClient::new(rpc_client, options_key),
            last_leader_contact: Mutex::new(None),
            ready_term: AtomicU64::new(0),
            heartbeats: Arc::new(HeartbeatTracker::new(heartbeat)),
            autopilot: crate::cluster::autopilot::Autopilot::new(members),
            leadership: Leadership::new(),
            tasks: Mutex::new(Vec::new()),
        });
        server.register_leader_duties();
        server.bootstrap().await?;
        let task = tokio::spawn(Arc::clone(&server).run_leader_duties());
        lock(&server.tasks).push(task);
        Ok(server)
    }

    /// Forms a one-voter group when this server is told to bootstrap alone;
    /// a restarted lone voter asks for an election at once instead of
    /// waiting out the election timeout.
    async fn bootstrap(&self) -> Result<(), ServerError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|error| ServerError::Raft(error.to_string()))?;
        if !initialized {
            if self.options.bootstrap_expect == 1 {
                let members = BTreeMap::from([(self.raft_id, self.node.clone())]);
                if let Err(error) = self.raft.initialize(members).await {
                    tracing::debug!(%error, "raft already initialized");
                }
                tracing::info!(id = %self.node.id, "bootstrapped a one-server cluster");
            } else {
                tracing::info!(
                    expect = self.options.bootstrap_expect,
                    "waiting for peers before bootstrapping"
                );
            }
            return Ok(());
        }
        let voters: BTreeSet<RaftId> = self.raft.voter_ids().collect();
        if voters.len() == 1 && voters.contains(&self.raft_id) {
            let _ = self.raft.trigger().elect(false).await;
        }
        Ok(())
    }

    /// The replicated state.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// This server as Raft knows it.
    pub fn node(&self) -> &ServerNode {
        &self.node
    }

    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Whether this server leads and has finished taking over (its
    /// leadership writes are applied), so its state is current.
    pub fn is_ready_leader(&self) -> bool {
        let metrics = self.metrics();
        metrics.state == ServerState::Leader
            && self.ready_term.load(Ordering::SeqCst) == metrics.current_term
            && self.lease_valid(&metrics)
    }

    /// Whether a quorum acknowledged this server as leader within the
    /// lease: false on a leader cut off from its quorum, whose writes Raft
    /// would refuse.
    pub fn holds_lease(&self) -> bool {
        let metrics = self.metrics();
        metrics.state == ServerState::Leader && self.lease_valid(&metrics)
    }

    /// The leadership lifecycle: the registered duties and the term they
    /// run for.
    pub fn leadership(&self) -> &Leadership<Arc<Server>> {
        &self.leadership
    }

    /// Raft's longest election timeout, which is also the leader lease.
    fn election_timeout_max(&self) -> Duration {
        Duration::from_millis(
            ELECTION_TIMEOUT_MAX_MS * u64::from(self.options.raft_multiplier.max(1)),
        )
    }

    /// Whether a quorum acknowledged this leader within the lease (the
    /// election timeout). A leader cut off from its quorum stops counting
    /// as leader here: Raft refuses its writes, and reads must not pretend
    /// it still leads.
    fn lease_valid(&self, metrics: &RaftMetrics<TypeConfig>) -> bool {
        use openraft::Instant as _;
        let voters = metrics.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return true;
        }
        let lease = self.election_timeout_max();
        metrics
            .last_quorum_acked
            .as_ref()
            .is_some_and(|acked| acked.elapsed() <= lease)
    }

    /// The current leader, if one is known. A follower that has not heard
    /// from its leader for longer than the election timeout no longer
    /// counts it as known (with pre-vote, Raft itself keeps the old
    /// leader's name while it cannot elect a new one).
    pub fn leader(&self) -> Option<ServerNode> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        if leader == self.raft_id && !self.lease_valid(&metrics) {
            return None;
        }
        if leader != self.raft_id {
            // The longest election timeout plus two heartbeats: past it a
            // follower would have stood for election itself.
            let timeout = self.election_timeout_max()
                + 2 * Duration::from_millis(
                    HEARTBEAT_INTERVAL_MS * u64::from(self.options.raft_multiplier.max(1)),
                );
            match *lock(&self.last_leader_contact) {
                Some(at) if at.elapsed() <= timeout => {}
                _ => return None,
            }
        }
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
    }

    /// Time since the leader was last heard from: zero on the leader itself,
    /// `None` when it never has been.
    pub fn last_contact(&self) -> Option<Duration> {
        if self.raft.is_leader() {
            return Some(Duration::ZERO);
        }
        lock(&self.last_leader_contact).map(|at| at.elapsed())
    }

    /// Waits up to `timeout` for a leader to be known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<ServerNode> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                if leader.id != self.node.id || self.is_ready_leader() {
                    return Some(leader);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Commits `command` through Raft on this server, which must lead.
    /// While an election is under way it waits (up to the hold time) for
    /// this server to lead again; when another server leads it fails with
    /// `NoLeader`: requests reach the leader as HTTP requests (checked
    /// there), never as raw commands.
    pub async fn apply(&self, command: Command) -> Result<AppliedWrite, ServerError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            match self.raft.client_write(RaftRequest(command.clone())).await {
                Ok(response) => {
                    return Ok(AppliedWrite {
                        index: response.log_id.index,
                        result: response.data.0.unwrap_or(CommandResult::Done),
                    })
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    if forward
                        .leader_id
                        .is_some_and(|leader| leader != self.raft_id)
                    {
                        return Err(ServerError::NoLeader);
                    }
                }
                Err(error) => return Err(ServerError::Raft(error.to_string())),
            }
            if Instant::now() >= deadline {
                return Err(ServerError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

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

    pub fn autopilot(&self) -> &crate::cluster::autopilot::Autopilot {
        &self.autopilot
    }

    /// The Raft id of this server.
    pub fn raft_id(&self) -> RaftId {
        self.raft_id
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

    /// The leader's heartbeat timers.
    pub fn heartbeats(&self) -> &Arc<HeartbeatTracker> {
        &self.heartbeats
    }

    /// Every server's RPC address in the Raft configuration.
    pub fn server_rpc_addresses(&self) -> Vec<String> {
        let (_, members) = self.raft_configuration();
        members
            .into_iter()
            .map(|member| member.node.rpc_addr)
            .collect()
    }

    fn node_reply(&self, ttl: Duration, index: u64) -> NodeRpcReply {
        NodeRpcReply {
            heartbeat_ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            index,
            leader_rpc_addr: self.node.rpc_addr.clone(),
            servers: self.server_rpc_addresses(),
            num_nodes: self.store.snapshot().node_count() as u64,
        }
    }

    /// A client registers its node (Nomad's `Node.Register`). Runs on the
    /// leader, which owns the heartbeat timers; followers pass it on. A
    /// node already known must present its own secret (Nomad's rule), so
    /// nobody can take over another node's ID.
    pub async fn node_register(&self, node: Node) -> Result<NodeRpcReply, RpcError> {
        if !self.is_ready_leader() {
            return self.forward_to_leader(paths::NODE_REGISTER, &node).await;
        }
        if uuid::Uuid::parse_str(&node.id).is_err() {
            return Err(RpcError::Invalid(format!(
                "invalid node ID {:?}: must be a UUID",
                short(&node.id)
            )));
        }
        if node.secret_id.is_empty() {
            return Err(RpcError::Invalid("missing node secret ID".to_string()));
        }
        if !node.status.is_empty() {
            validate_node_status(&node.status)?;
        }
        if let Some(stored) = self.store.snapshot().node(&node.id) {
            if !caravan_state::secrets_equal(&stored.secret_id, &node.secret_id) {
                return Err(RpcError::SecretMismatch);
            }
        }
        let node_id = node.id.clone();
        let write = self
            .apply(Command::NodeRegister {
                node: Box::new(node),
                now: chrono::Utc::now(),
            })
            .await?;
        if let CommandResult::Refused(reason) = write.result {
            return Err(RpcError::Refused(reason));
        }
        let ttl = self.heartbeats.reset(&node_id);
        Ok(self.node_reply(ttl, write.index))
    }

    /// The stored node whose secret the caller presented.
    fn authenticated_node(&self, node_id: &str, secret_id: &str) -> Result<Arc<Node>, RpcError> {
        let stored = self.store.snapshot().node(node_id).cloned();
        let Some(stored) = stored else {
            return Err(RpcError::NodeNotFound);
        };
        if !caravan_state::secrets_equal(&stored.secret_id, secret_id) {
            return Err(RpcError::SecretMismatch);
        }
        Ok(stored)
    }

    /// A client's heartbeat (Nomad's `Node.UpdateStatus`): resets the
    /// node's timer and writes only when the status changes.
    pub async fn node_heartbeat(&self, beat: NodeHeartbeat) -> Result<NodeRpcReply, RpcError> {
        if !self.is_ready_leader() {
            return self.forward_to_leader(paths::NODE_HEARTBEAT, &beat).await;
        }
        validate_node_status(&beat.status)?;
        let stored = self.authenticated_node(&beat.node_id, &beat.secret_id)?;
        let mut index = 0;
        if stored.status != beat.status {
            let write = self
                .apply(Command::NodeUpdateStatus {
                    node_id: beat.node_id.clone(),
                    status: beat.status.clone(),
                    event: None,
                    now: chrono::Utc::now(),
                })
                .await?;
            if let CommandResult::Refused(reason) = write.result {
                return Err(RpcError::Refused(reason));
            }
            index = write.index;
        }
        let ttl = self.heartbeats.reset(&beat.node_id);
        Ok(self.node_reply(ttl, index))
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
        let index: u64 = self
            .rpc
            .get(&leader.rpc_addr, paths::RAFT_READ_INDEX, LEADER_WAIT)
            .await
            .map_err(call_error)?;
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|error| RpcError::Internal(error.to_string()))
    }

    /// Whether this server is the ready leader, waiting (up to the hold
    /// time) for a leader when none is known; `Err` when none appears.
    async fn leads_or_waits(&self) -> Result<bool, RpcError> {
        if self.is_ready_leader() {
            return Ok(true);
        }
        match self.wait_for_leader(LEADER_WAIT).await {
            Some(leader) => Ok(leader.id == self.node.id),
            None => Err(RpcError::NoLeader),
        }
    }

    /// Stores events a client reports about its node (Nomad's
    /// `Node.EmitEvents`).
    pub async fn node_emit_events(&self, report: NodeEvents) -> Result<u64, RpcError> {
        if !self.leads_or_waits().await? {
            return self.forward_to_leader(paths::NODE_EVENTS, &report).await;
        }
        self.authenticated_node(&report.node_id, &report.secret_id)?;
        let write = self
            .apply(Command::NodeEmitEvents {
                node_id: report.node_id,
                events: report.events,
            })
            .await?;
        match write.result {
            CommandResult::Refused(reason) => Err(RpcError::Refused(reason)),
            _ => Ok(write.index),
        }
    }

    /// Hands an RPC to the leader, waiting (within the hold time) for one
    /// to be elected, and retrying while the leader changes under it, as
    /// Nomad's `RPCHoldTimeout` does.
    async fn forward_to_leader<T: Serialize, R: serde::de::DeserializeOwned>(
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

    /// Registers what the leader does while it leads: heartbeat timers,
    /// the drainer and autopilot (the eval broker, blocked evals, plan
    /// applier, deployment watcher and GC will join them the same way).
    fn register_leader_duties(&self) {
        self.leadership
            .register_fn("heartbeat timers", |server: Arc<Server>, token| {
                let heartbeats = Arc::clone(&server.heartbeats);
                heartbeats.run(token, move |command| {
                    let server = Arc::clone(&server);
                    Box::pin(async move {
                        // A leader cut off from its quorum cannot write;
                        // the next leader gives the node a fresh TTL.
                        if !server.holds_lease() {
                            return;
                        }
                        if let Err(error) = server.apply(command).await {
                            tracing::warn!(%error, "failed to mark a node down");
                        }
                    })
                })
            });
        self.leadership
            .register_fn("drainer", crate::leader::drainer::run);
        self.leadership
            .register_fn("autopilot", crate::cluster::autopilot::run);
    }

    /// Stops Raft and the server's tasks.
    pub async fn shutdown(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.leadership.abort();
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft did not shut down cleanly");
        }
    }

    /// Watches for this server becoming leader and does what a new leader
    /// must (Nomad's `establishLeadership`), then starts the leader duties
    /// for that term; stops them when the term's leadership ends.
    async fn run_leader_duties(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        loop {
            let (state, term) = {
                let current = metrics.borrow_watched();
                (current.state, current.current_term)
            };
            if let Some(led) = self.leadership.term() {
                if state != ServerState::Leader || term != led {
                    self.leadership.stop().await;
                    self.heartbeats.clear_all();
                    tracing::info!(term = led, "cluster leadership lost");
                }
            }
            if state == ServerState::Leader && self.ready_term.load(Ordering::SeqCst) != term {
                match self.establish_leadership().await {
                    Ok(()) => {
                        self.heartbeats.initialize(&self.store.snapshot());
                        self.ready_term.store(term, Ordering::SeqCst);
                        self.leadership.start(Arc::clone(&self), term);
                        tracing::info!(term, "cluster leadership acquired");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "establishing leadership failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    async fn establish_leadership(&self) -> Result<(), ServerError> {
        self.refresh_own_address().await?;
        for command in [
            Command::SchedulerConfigInit {
                config: self.options.default_scheduler_config.clone(),
            },
            Command::AutopilotConfigInit {
                config: self.options.autopilot.clone(),
            },
        ] {
            self.raft
                .client_write(RaftRequest(command))
                .await
                .map_err(|error| ServerError::Raft(error.to_string()))?;
        }
        Ok(())
    }

    /// A server restarted with other addresses updates its own entry in the
    /// Raft configuration, so peers and `status/leader` use the new ones.
    async fn refresh_own_address(&self) -> Result<(), ServerError> {
        let metrics = self.metrics();
        let recorded = metrics
            .membership_config
            .membership()
            .get_node(&self.raft_id)
            .cloned();
        if recorded.as_ref() == Some(&self.node) || recorded.is_none() {
            return Ok(());
        }
        let change = ChangeMembers::<RaftId, ServerNode>::SetNodes(BTreeMap::from([(
            self.raft_id,
            self.node.clone(),
        )]));
        self.raft
            .change_membership(change, true)
            .await
            .map(|_| ())
            .map_err(|error| ServerError::Raft(error.to_string()))
    }
}

/// Raft timings at `raft_multiplier = 1`: a heartbeat every 100 ms; a
/// follower that hears nothing for 400–800 ms stands for election (and the
/// leader lease is the longer figure). Failover lands near a second.
const HEARTBEAT_INTERVAL_MS: u64 = 100;
const ELECTION_TIMEOUT_MIN_MS: u64 = 400;
const ELECTION_TIMEOUT_MAX_MS: u64 = 800;

fn raft_config(options: &ServerOptions) -> Result<openraft::Config, ServerError> {
    let multiplier = u64::from(options.raft_multiplier.max(1));
    openraft::Config {
        cluster_name: format!("caravan-{}", options.region),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS * multiplier,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS * multiplier,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS * multiplier,
        install_snapshot_timeout: 60_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_threshold.max(1)),
        max_in_snapshot_log_to_keep: options.trailing_logs,
        purge_batch_size: 256,
        // A server that rejoins after being cut off (or removed) must not
        // depose a healthy leader by bumping the term.
        enable_pre_vote: Some(true),
        ..Default::default()
    }
    .validate()
    .map_err(|error| ServerError::Raft(error.to_string()))
}

/// The server's node UUID, created on first start and kept in `data_dir`.
pub fn load_or_create_node_id(dir: &std::path::Path) -> std::io::Result<String> {
    caravan_files::load_or_create_uuid(&dir.join("node-id"))
}

/// The statuses a client may report (Nomad's `ValidNodeStatus`).
fn validate_node_status(status: &str) -> Result<(), RpcError> {
    match status {
        "initializing" | "ready" | "down" | "disconnected" => Ok(()),
        other => Err(RpcError::Invalid(format!(
            "invalid status for node: {:?}",
            short(other)
        ))),
    }
}

/// At most a short prefix of caller-supplied text, for error messages.
fn short(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

fn call_error(error: caravan_rpc::CallError) -> RpcError {
    match error {
        caravan_rpc::CallError::Remote(remote) => remote,
        other => RpcError::Forward(other.to_string()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
