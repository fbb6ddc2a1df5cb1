//! The client role of a Caravan agent: it fingerprints the machine,
//! registers it as a node, keeps it alive with heartbeats (failing over
//! between servers), and re-fingerprints drivers periodically.

pub mod allocs;
pub mod drivers;
pub mod fingerprint;
pub mod fs;
pub mod gc;
pub mod host_stats;
pub mod identity;
pub mod rpc;
pub mod runner;
mod servers;
pub mod stats;
mod supervisor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caravan_api_types::node::{DriverInfo, Node, NODE_STATUS_READY};
use caravan_api_types::sync::lock;
use caravan_rpc::{NodeHeartbeat, NodeRpcReply, RpcError as ServerRpcError};

pub use identity::NodeIdentity;
pub use servers::{ServerList, ServerListError, DEFAULT_RPC_PORT};

use crate::drivers::DriverState;
use crate::rpc::RpcError;

/// What the client reserves from scheduling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedOptions {
    pub cpu: u64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub reserved_ports: String,
}

/// How often a driver that stopped working is checked again.
const DEGRADED_RECHECK: Duration = Duration::from_secs(5);

/// Everything the client needs from the agent configuration.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub identity: NodeIdentity,
    pub state_dir: PathBuf,
    pub node_name: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub meta: BTreeMap<String, String>,
    /// name → (path, read only)
    pub host_volumes: BTreeMap<String, (String, bool)>,
    pub reserved: ReservedOptions,
    pub http_advertise: String,
    pub network_interface: String,
    pub network_speed: u64,
    pub cpu_total_compute: u64,
    pub memory_total_mb: u64,
    pub disk_free_mb: u64,
    pub raw_exec_enabled: bool,
    pub version: String,
    pub revision: String,
    /// How often drivers are checked again.
    pub fingerprint_interval: Duration,
    /// Whether servers' RPC ports speak TLS (`tls { rpc = true }`); the
    /// HTTP client given to [`Client::new`] then carries the certificate.
    pub rpc_tls: bool,
    /// `<data_dir>/alloc`: where allocation directories go.
    pub alloc_dir: PathBuf,
    pub region: String,
    /// The most a task is given to stop before it is killed.
    pub max_kill_timeout: Duration,
    /// The `caravan` binary, run as `caravan executor` to parent tasks.
    pub executor_binary: PathBuf,
    /// Kill every task when the agent stops (`-dev`, as Nomad's dev mode).
    pub destroy_on_shutdown: bool,
    /// When terminal allocations are collected.
    pub gc: gc::GcOptions,
}

/// What the heartbeat loop last learned.
#[derive(Debug, Clone, Default)]
struct HeartbeatState {
    last_ok: Option<Instant>,
    ttl: Duration,
    registered: bool,
}

/// A running client agent.
pub struct Client {
    options: ClientOptions,
    servers: ServerList,
    rpc: caravan_rpc::RpcClient,
    node: Mutex<Node>,
    /// The drivers tasks run with; their fingerprints are the node's.
    drivers: caravan_drivers::DriverSet,
    driver_states: Mutex<BTreeMap<String, DriverState>>,
    heartbeat: Mutex<HeartbeatState>,
    /// Allocation updates on their way to the servers.
    batcher: Arc<allocs::UpdateBatcher>,
    /// The alloc runners, started by [`Client::run`].
    manager: std::sync::OnceLock<Arc<runner::AllocManager>>,
    /// The tasks following the servers' allocations and sending reports,
    /// stopped at shutdown.
    background: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Client {
    /// Fingerprints the machine; [`Client::run`] then registers it.
    pub async fn new(
        options: ClientOptions,
        servers: Vec<String>,
        http: reqwest::Client,
    ) -> Arc<Self> {
        let driver_set = caravan_drivers::DriverSet::new(
            options.executor_binary.clone(),
            options.raw_exec_enabled,
        );
        let driver_states = drivers::detect_all(&driver_set).await;
        let now = chrono::Utc::now();
        let infos: BTreeMap<String, DriverInfo> = driver_states
            .iter()
            .map(|(name, state)| (name.clone(), drivers::to_info(state, now)))
            .collect();
        let facts = fingerprint::host_facts(&options.state_dir);
        let node = fingerprint::build_node(&options, &facts, &infos, &driver_states);
        let rpc = caravan_rpc::RpcClient::new(http, None).with_tls(options.rpc_tls);
        Arc::new(Self {
            servers: ServerList::new(servers, rpc.clone()).await,
            rpc,
            node: Mutex::new(node),
            drivers: driver_set,
            driver_states: Mutex::new(driver_states),
            heartbeat: Mutex::new(HeartbeatState::default()),
            batcher: Arc::new(allocs::UpdateBatcher::new()),
            manager: std::sync::OnceLock::new(),
            background: Mutex::new(Vec::new()),
            options,
        })
    }

    /// The servers this client knows.
    pub fn servers(&self) -> &ServerList {
        &self.servers
    }

    pub fn node_id(&self) -> &str {
        &self.options.identity.node_id
    }

    /// One allocation this client holds (its runner, directory and task
    /// states), for the client endpoints; `None` when it has no runner
    /// here.
    pub fn alloc_view(&self, alloc_id: &str) -> Option<runner::AllocView> {
        self.manager.get()?.view(alloc_id)
    }

    /// The node as last fingerprinted.
    pub fn node(&self) -> Node {
        lock(&self.node).clone()
    }

    /// Time since the last successful heartbeat, and the TTL in force.
    pub fn heartbeat_status(&self) -> (Option<Duration>, Duration) {
        let state = lock(&self.heartbeat);
        (state.last_ok.map(|at| at.elapsed()), state.ttl)
    }

    /// Registers and heartbeats until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let refresher = tokio::spawn(Arc::clone(&self).refresh_drivers());
        let allocations = tokio::spawn(Arc::clone(&self).supervise_allocations());
        lock(&self.background).push(allocations.abort_handle());
        self.heartbeat_loop().await;
        refresher.abort();
        allocations.abort();
    }

    /// Calls `call` against the known servers in turn until one answers.
    async fn with_failover<F, Fut>(&self, call: F) -> Result<NodeRpcReply, RpcError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<NodeRpcReply, RpcError>>,
    {
        self.servers.call_with_failover(call).await
    }

    async fn register(&self) -> Result<NodeRpcReply, RpcError> {
        let node = self.node();
        self.with_failover(|server| {
            let node = node.clone();
            async move { rpc::register(&self.rpc, &server, &node).await }
        })
        .await
    }

    async fn beat(&self) -> Result<NodeRpcReply, RpcError> {
        let beat = NodeHeartbeat {
            node_id: self.options.identity.node_id.clone(),
            secret_id: self.options.identity.secret_id.clone(),
            status: NODE_STATUS_READY.to_string(),
        };
        self.with_failover(|server| {
            let beat = beat.clone();
            async move { rpc::heartbeat(&self.rpc, &server, &beat).await }
        })
        .await
    }

    fn note_success(&self, reply: &NodeRpcReply) {
        let mut state = lock(&self.heartbeat);
        state.last_ok = Some(Instant::now());
        state.ttl = Duration::from_millis(reply.heartbeat_ttl_ms);
        drop(state);
        if !reply.servers.is_empty() {
            self.servers.learn(&reply.servers);
        }
    }

    /// Reports node events to a server (failing over like heartbeats).
    async fn emit_events(&self, events: Vec<caravan_api_types::node::NodeEvent>) {
        if events.is_empty() {
            return;
        }
        let report = caravan_rpc::NodeEvents {
            node_id: self.options.identity.node_id.clone(),
            secret_id: self.options.identity.secret_id.clone(),
            events,
        };
        for server in self.servers.get() {
            match rpc::emit_events(&self.rpc, &server, &report).await {
                Ok(_) => return,
                Err(error) => tracing::warn!(%server, %error, "failed to report node events"),
            }
        }
    }

    async fn heartbeat_loop(&self) {
        loop {
            let registered = lock(&self.heartbeat).registered;
            let outcome = if registered {
                self.beat().await
            } else {
                match self.register().await {
                    Ok(_) => {
                        tracing::info!(node_id = %self.node_id(), "node registered");
                        lock(&self.heartbeat).registered = true;
                        self.beat().await
                    }
                    Err(error) => Err(error),
                }
            };
            let wait = match outcome {
                Ok(reply) => {
                    self.note_success(&reply);
                    Duration::from_millis(reply.heartbeat_ttl_ms.max(100))
                }
                Err(RpcError::Remote(ServerRpcError::NodeNotFound)) => {
                    tracing::info!("servers do not know this node; registering again");
                    lock(&self.heartbeat).registered = false;
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(%error, "heartbeat failed");
                    Duration::from_millis(1000 + rand::random_range(0..1000))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Checks the drivers again now and then; a change is registered.
    /// While a driver that was working is not (the Docker Engine went
    /// away), it is checked every few seconds, so the node offers it again
    /// soon after it is back.
    async fn refresh_drivers(self: Arc<Self>) {
        // The drivers that have worked here: only their loss is rechecked
        // often (exec on a host without cgroups is unhealthy for good).
        let mut worked: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        loop {
            let degraded = {
                let states = lock(&self.driver_states);
                worked.extend(
                    states
                        .iter()
                        .filter(|(_, state)| state.healthy)
                        .map(|(name, _)| name.clone()),
                );
                states
                    .iter()
                    .any(|(name, state)| !state.healthy && worked.contains(name))
            };
            let wait = match degraded {
                true => self.options.fingerprint_interval.min(DEGRADED_RECHECK),
                false => self.options.fingerprint_interval,
            };
            tokio::time::sleep(wait).await;
            let fresh = drivers::detect_all(&self.drivers).await;
            let changed = *lock(&self.driver_states) != fresh;
            if !changed {
                continue;
            }
            let now = chrono::Utc::now();
            {
                let mut node = lock(&self.node);
                let previous = lock(&self.driver_states).clone();
                for (name, state) in &fresh {
                    if previous.get(name) != Some(state) {
                        node.drivers
                            .insert(name.clone(), drivers::to_info(state, now));
                    }
                }
                let facts = fingerprint::host_facts(&self.options.state_dir);
                let drivers = node.drivers.clone();
                *node = fingerprint::build_node(&self.options, &facts, &drivers, &fresh);
            }
            let events = {
                let previous = lock(&self.driver_states);
                drivers::health_events(&previous, &fresh)
            };
            *lock(&self.driver_states) = fresh;
            tracing::info!("driver health changed; updating the node");
            if let Err(error) = self.register().await {
                tracing::warn!(%error, "failed to update the node after a driver change");
            }
            self.emit_events(events).await;
        }
    }
}
