//! The server role: one Raft member with its log, FSM and leader duties.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Tokio's clock, not the OS's: a simulation controls it.
use tokio::time::Instant;

use caravan_api_types::sync::lock;
use caravan_state::{Command, CommandResult, StateStore};
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{RaftMetrics, ServerState};

use caravan_rpc::RpcClient;

use crate::cluster::autopilot::{Autopilot, AutopilotServer};
use crate::cluster::membership::MemberView;
use crate::error::ServerError;
use crate::leader::context::LeaderServer;
use crate::leader::heartbeat::HeartbeatTracker;
use crate::leader::lifecycle::Leadership;
use crate::leader::stats::SchedulerStats;
use crate::options::ServerOptions;
use crate::raft::config::{raft_config, ELECTION_TIMEOUT_MAX_MS, HEARTBEAT_INTERVAL_MS};
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::transport::{Network, RaftTransport};
use crate::raft::types::{
    raft_id_of, AppliedWrite, FollowerProgress, RaftId, RaftMember, RaftRequest, ServerNode,
    TypeConfig,
};
use crate::raft::Raft;

/// How long a request waits for a leader before failing, like Nomad's
/// `RPCHoldTimeout`.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    pub(crate) options: ServerOptions,
    pub(crate) node: ServerNode,
    pub(crate) raft_id: RaftId,
    pub(crate) raft: Raft,
    pub(crate) store: Arc<StateStore>,
    pub(crate) log_store: LogStore,
    pub(crate) state_machine: StateMachine,
    pub(crate) rpc: RpcClient,
    /// Raft's messages to peers (and the read index a follower asks for).
    pub(crate) transport: Arc<dyn RaftTransport>,
    /// When a leader's message was last accepted (followers only).
    pub(crate) last_leader_contact: Mutex<Option<Instant>>,
    /// The term in which this server finished establishing leadership.
    pub(crate) ready_term: AtomicU64,
    pub(crate) heartbeats: Arc<HeartbeatTracker>,
    pub(crate) autopilot: Autopilot,
    /// The leader duties, started per established term.
    pub(crate) leadership: Leadership<Arc<Server>>,
    /// What the evaluation pipeline did while this server led.
    pub(crate) scheduler_stats: SchedulerStats,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Server {
    /// Opens the server's storage, starts Raft and its leader duties.
    pub async fn start(
        options: ServerOptions,
        transport: Arc<dyn RaftTransport>,
        rpc_client: reqwest::Client,
        members: Arc<dyn MemberView>,
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
            Network::new(Arc::clone(&transport)),
            log_store.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|error| ServerError::Raft(error.to_string()))?;

        let heartbeat = options.heartbeat;
        let options_key = options.cluster_key.clone();
        let options_tls = options.rpc_tls;
        let server = Arc::new(Self {
            options,
            node,
            raft_id,
            raft,
            store,
            log_store,
            state_machine,
            rpc: RpcClient::new(rpc_client, options_key).with_tls(options_tls),
            transport,
            last_leader_contact: Mutex::new(None),
            ready_term: AtomicU64::new(0),
            heartbeats: Arc::new(HeartbeatTracker::new(heartbeat)),
            autopilot: Autopilot::new(members),
            leadership: Leadership::new(),
            scheduler_stats: SchedulerStats::default(),
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
    /// What the evaluation pipeline did while this server led
    /// (`/v1/agent/self`'s `scheduler` stats).
    pub fn scheduler_stats(&self) -> &SchedulerStats {
        &self.scheduler_stats
    }

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

    pub fn autopilot(&self) -> &Autopilot {
        &self.autopilot
    }

    /// The Raft id of this server.
    pub fn raft_id(&self) -> RaftId {
        self.raft_id
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
}

/// The server's node UUID, created on first start and kept in `data_dir`.
pub fn load_or_create_node_id(dir: &std::path::Path) -> std::io::Result<String> {
    caravan_files::load_or_create_uuid(&dir.join("node-id"))
}

impl LeaderServer for Server {
    fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    fn holds_lease(&self) -> bool {
        Server::holds_lease(self)
    }

    fn apply(&self, command: Command) -> BoxFuture<'_, Result<AppliedWrite, ServerError>> {
        Box::pin(Server::apply(self, command))
    }

    fn scheduler_workers(&self) -> usize {
        self.options.num_schedulers
    }

    fn scheduler_stats(&self) -> &SchedulerStats {
        &self.scheduler_stats
    }

    fn enabled_schedulers(&self) -> &[String] {
        &self.options.enabled_schedulers
    }

    fn gc_config(&self) -> crate::options::GcConfig {
        self.options.gc
    }
}

impl AutopilotServer for Server {
    fn node(&self) -> &ServerNode {
        &self.node
    }

    fn autopilot(&self) -> &Autopilot {
        &self.autopilot
    }

    fn raft_configuration(&self) -> (u64, Vec<RaftMember>) {
        Server::raft_configuration(self)
    }

    fn follower_progress(&self) -> BTreeMap<RaftId, FollowerProgress> {
        Server::follower_progress(self)
    }

    fn leader_position(&self) -> (u64, u64) {
        Server::leader_position(self)
    }

    fn add_nonvoter(&self, node: ServerNode) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(Server::add_nonvoter(self, node))
    }

    fn promote(&self, id: RaftId) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(Server::promote(self, id))
    }

    fn remove_server(&self, id: RaftId) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(Server::remove_server(self, id))
    }
}
