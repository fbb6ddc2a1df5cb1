//! Wire types of the `/v1/operator/` API page.

use serde::{Deserialize, Serialize};

use crate::duration::as_go_string;

/// Which schedulers may preempt lower-priority allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PreemptionConfig {
    pub system_scheduler_enabled: bool,
    pub sys_batch_scheduler_enabled: bool,
    pub batch_scheduler_enabled: bool,
    pub service_scheduler_enabled: bool,
}

/// The cluster-wide scheduler configuration (`SchedulerConfig`).
///
/// `Default` is Go's zero value, which is what a PUT body starts from
/// (Nomad decodes it as a full replacement); [`Self::initial`] is the
/// configuration a new cluster starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SchedulerConfiguration {
    pub scheduler_algorithm: String,
    pub preemption_config: PreemptionConfig,
    pub memory_oversubscription_enabled: bool,
    pub reject_job_registration: bool,
    pub pause_eval_broker: bool,
    pub node_limit_for_feasibility_checks: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

pub const SCHEDULER_ALGORITHM_BINPACK: &str = "binpack";
pub const SCHEDULER_ALGORITHM_SPREAD: &str = "spread";

impl SchedulerConfiguration {
    /// Nomad's `default_scheduler_config`: binpack, only system preemption on.
    pub fn initial() -> Self {
        Self {
            scheduler_algorithm: SCHEDULER_ALGORITHM_BINPACK.to_string(),
            preemption_config: PreemptionConfig {
                system_scheduler_enabled: true,
                ..PreemptionConfig::default()
            },
            memory_oversubscription_enabled: false,
            reject_job_registration: false,
            pause_eval_broker: false,
            node_limit_for_feasibility_checks: 0,
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl SchedulerConfiguration {
    /// Normalises a configuration received from a user the way Nomad does
    /// (an empty algorithm means binpack) and rejects an unknown algorithm.
    pub fn validated(mut self) -> Result<Self, String> {
        if self.scheduler_algorithm.is_empty() {
            self.scheduler_algorithm = SCHEDULER_ALGORITHM_BINPACK.to_string();
        }
        match self.scheduler_algorithm.as_str() {
            SCHEDULER_ALGORITHM_BINPACK | SCHEDULER_ALGORITHM_SPREAD => Ok(self),
            other => Err(format!("invalid scheduler algorithm: {other}")),
        }
    }
}

/// Body of `GET /v1/operator/scheduler/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchedulerConfigurationResponse {
    pub scheduler_config: SchedulerConfiguration,
    pub index: u64,
    pub last_contact: u64,
    pub known_leader: bool,
    pub next_token: String,
}

/// Body of a scheduler configuration write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchedulerSetConfigurationResponse {
    pub updated: bool,
    pub index: u64,
}

/// Autopilot settings. Durations travel as Go duration strings ("200ms");
/// they are held here as nanoseconds. `Default` is Go's zero value (what a
/// PUT body starts from); [`Self::initial`] holds Nomad's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AutopilotConfiguration {
    pub cleanup_dead_servers: bool,
    #[serde(with = "as_go_string")]
    pub last_contact_threshold: i64,
    pub max_trailing_logs: u64,
    pub min_quorum: u64,
    #[serde(with = "as_go_string")]
    pub server_stabilization_time: i64,
    pub enable_redundancy_zones: bool,
    pub disable_upgrade_migration: bool,
    pub enable_custom_upgrades: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl AutopilotConfiguration {
    /// Nomad's defaults for the agent `autopilot` block.
    pub fn initial() -> Self {
        Self {
            cleanup_dead_servers: true,
            last_contact_threshold: 200_000_000,
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time: 10_000_000_000,
            enable_redundancy_zones: false,
            disable_upgrade_migration: false,
            enable_custom_upgrades: false,
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// One server of `GET /v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServer {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
    pub raft_protocol: String,
}

/// Body of `GET /v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfiguration {
    pub servers: Vec<RaftServer>,
    pub index: u64,
}

/// One server of `GET /v1/operator/autopilot/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerHealth {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub address: String,
    pub serf_status: String,
    pub version: String,
    pub leader: bool,
    pub last_contact: String,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    pub voter: bool,
    pub stable_since: String,
}

/// Body of `GET /v1/operator/autopilot/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperatorHealthReply {
    pub healthy: bool,
    pub failure_tolerance: u64,
    pub servers: Vec<ServerHealth>,
    pub leader: String,
    pub voters: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn autopilot_durations_are_strings_both_ways() {
        let config = AutopilotConfiguration::initial();
        let wire = serde_json::to_value(&config).unwrap();
        assert_eq!(wire["LastContactThreshold"], json!("200ms"));
        assert_eq!(wire["ServerStabilizationTime"], json!("10s"));
        let back: AutopilotConfiguration = serde_json::from_value(wire).unwrap();
        assert_eq!(back, config);
        let numeric = json!({"LastContactThreshold": 5});
        assert!(serde_json::from_value::<AutopilotConfiguration>(numeric).is_err());
    }

    #[test]
    fn scheduler_algorithm_is_checked() {
        let config = SchedulerConfiguration::default();
        assert_eq!(config.validated().unwrap().scheduler_algorithm, "binpack");
        let bad = SchedulerConfiguration {
            scheduler_algorithm: "random".into(),
            ..SchedulerConfiguration::initial()
        };
        assert_eq!(
            bad.validated().unwrap_err(),
            "invalid scheduler algorithm: random"
        );
    }
}
