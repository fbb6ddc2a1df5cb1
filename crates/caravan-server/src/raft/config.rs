//! openraft's configuration from the server's options.

use openraft::SnapshotPolicy;

use crate::error::ServerError;
use crate::options::ServerOptions;

/// Raft timings at `raft_multiplier = 1`: a heartbeat every 100 ms; a
/// follower that hears nothing for 400–800 ms stands for election (and the
/// leader lease is the longer figure). Failover lands near a second.
pub(crate) const HEARTBEAT_INTERVAL_MS: u64 = 100;
pub(crate) const ELECTION_TIMEOUT_MIN_MS: u64 = 400;
pub(crate) const ELECTION_TIMEOUT_MAX_MS: u64 = 800;

pub(crate) fn raft_config(options: &ServerOptions) -> Result<openraft::Config, ServerError> {
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
