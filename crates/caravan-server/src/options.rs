//! What a server needs to start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use caravan_rpc::ClusterKey;

use crate::leader::heartbeat::HeartbeatConfig;
use crate::raft::memory_disk::Storage;

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
    pub storage: Storage,
    /// The key server-to-server calls are signed with and checked against;
    /// `None` leaves the server-only routes open (the agent warns).
    pub cluster_key: Option<Arc<ClusterKey>>,
    /// Whether the RPC port is TLS: server-only routes then require a
    /// server certificate of this region.
    pub rpc_tls: bool,
    /// Scheduling workers while this server leads (`num_schedulers`; 0:
    /// one per core, Nomad's default).
    pub num_schedulers: usize,
    /// The job types this server's workers schedule (`enabled_schedulers`;
    /// empty: all of them).
    pub enabled_schedulers: Vec<String>,
    /// Garbage collection's interval and thresholds.
    pub gc: GcConfig,
}

/// How old finished things must be before they are collected (Nomad's
/// server options and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `eval_gc_threshold`.
    pub eval: Duration,
    /// `batch_eval_gc_threshold`.
    pub batch_eval: Duration,
    /// `job_gc_threshold`.
    pub job: Duration,
    /// `node_gc_threshold`.
    pub node: Duration,
    /// `acl_token_gc_threshold`.
    pub acl_token: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        let hours = |count: u64| Duration::from_secs(count * 3600);
        Self {
            eval: hours(1),
            batch_eval: hours(24),
            job: hours(4),
            node: hours(24),
            acl_token: hours(1),
        }
    }
}

impl Thresholds {
    /// A forced collection's (`PUT /v1/system/gc`): anything finished at
    /// all, as Nomad's 1 ms threshold.
    pub fn forced() -> Self {
        let moment = Duration::from_millis(1);
        Self {
            eval: moment,
            batch_eval: moment,
            job: moment,
            node: moment,
            acl_token: moment,
        }
    }
}

/// When collection runs and what it collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// `job_gc_interval` (Nomad runs every collector every 5 minutes).
    pub interval: Duration,
    pub thresholds: Thresholds,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            thresholds: Thresholds::default(),
        }
    }
}
