//! The `server` block: Raft, heartbeats, joining, gossip encryption.

use std::path::PathBuf;
use std::time::Duration;

use caravan_api_types::operator::SchedulerConfiguration;

use crate::file::ServerFile;
use crate::merge::{set, set_duration};

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub enabled: bool,
    pub bootstrap_expect: u32,
    pub data_dir: Option<PathBuf>,
    pub num_schedulers: u32,
    pub enabled_schedulers: Vec<String>,
    pub heartbeat_grace: Duration,
    pub min_heartbeat_ttl: Duration,
    pub max_heartbeats_per_second: f64,
    pub failover_heartbeat_ttl: Duration,
    pub node_gc_threshold: Duration,
    /// How often the leader collects garbage (`job_gc_interval`).
    pub job_gc_interval: Duration,
    pub job_gc_threshold: Duration,
    pub eval_gc_threshold: Duration,
    pub batch_eval_gc_threshold: Duration,
    /// Accepted for Nomad's configurations; Caravan has no deployments yet.
    pub deployment_gc_threshold: Duration,
    pub acl_token_gc_threshold: Duration,
    pub raft_protocol: u32,
    pub raft_multiplier: u32,
    pub raft_snapshot_threshold: u64,
    pub raft_trailing_logs: u64,
    pub retry_join: Vec<String>,
    pub start_join: Vec<String>,
    pub retry_max: u32,
    pub retry_interval: Duration,
    pub rejoin_after_leave: bool,
    pub default_scheduler_config: SchedulerConfiguration,
    pub authoritative_region: String,
    /// The gossip encryption key (`encrypt`, `-encrypt`): base64 of 16, 24
    /// or 32 bytes, checked when the configuration is loaded.
    pub encrypt: Option<String>,
}

impl ServerConfig {
    /// Nomad's defaults, or those of `agent -dev` (which runs a server).
    pub(crate) fn defaults(dev_mode: bool) -> Self {
        Self {
            enabled: dev_mode,
            bootstrap_expect: u32::from(dev_mode),
            data_dir: None,
            num_schedulers: 0,
            enabled_schedulers: Vec::new(),
            heartbeat_grace: Duration::from_secs(10),
            min_heartbeat_ttl: Duration::from_secs(10),
            max_heartbeats_per_second: 50.0,
            failover_heartbeat_ttl: Duration::from_secs(300),
            node_gc_threshold: Duration::from_secs(24 * 3600),
            job_gc_interval: Duration::from_secs(300),
            job_gc_threshold: Duration::from_secs(4 * 3600),
            eval_gc_threshold: Duration::from_secs(3600),
            batch_eval_gc_threshold: Duration::from_secs(24 * 3600),
            deployment_gc_threshold: Duration::from_secs(3600),
            acl_token_gc_threshold: Duration::from_secs(3600),
            raft_protocol: 3,
            raft_multiplier: 1,
            raft_snapshot_threshold: 8192,
            raft_trailing_logs: 10240,
            retry_join: Vec::new(),
            start_join: Vec::new(),
            retry_max: 0,
            retry_interval: Duration::from_secs(30),
            rejoin_after_leave: false,
            default_scheduler_config: SchedulerConfiguration::initial(),
            authoritative_region: String::new(),
            encrypt: None,
        }
    }

    /// The decoded gossip key, when one is set.
    pub fn encrypt_key(&self) -> Option<Vec<u8>> {
        self.encrypt
            .as_deref()
            .and_then(|key| decode_gossip_key(key).ok())
    }

    /// Lays the `server` block of a file over this configuration.
    pub(crate) fn apply_file(&mut self, file: &ServerFile) -> Result<(), (String, String)> {
        let server = self;
        set(&mut server.enabled, &file.enabled);
        set(&mut server.bootstrap_expect, &file.bootstrap_expect);
        if let Some(dir) = &file.data_dir {
            server.data_dir = Some(PathBuf::from(dir));
        }
        set(&mut server.num_schedulers, &file.num_schedulers);
        set(&mut server.enabled_schedulers, &file.enabled_schedulers);
        set_duration(
            &mut server.heartbeat_grace,
            &file.heartbeat_grace,
            "server.heartbeat_grace",
        )?;
        set_duration(
            &mut server.min_heartbeat_ttl,
            &file.min_heartbeat_ttl,
            "server.min_heartbeat_ttl",
        )?;
        if let Some(rate) = file.max_heartbeats_per_second {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err((
                    "server.max_heartbeats_per_second".to_string(),
                    "must be a positive number".to_string(),
                ));
            }
            server.max_heartbeats_per_second = rate;
        }
        set_duration(
            &mut server.failover_heartbeat_ttl,
            &file.failover_heartbeat_ttl,
            "server.failover_heartbeat_ttl",
        )?;
        set_duration(
            &mut server.node_gc_threshold,
            &file.node_gc_threshold,
            "server.node_gc_threshold",
        )?;
        for (value, given, key) in [
            (
                &mut server.job_gc_threshold,
                &file.job_gc_threshold,
                "server.job_gc_threshold",
            ),
            (
                &mut server.eval_gc_threshold,
                &file.eval_gc_threshold,
                "server.eval_gc_threshold",
            ),
            (
                &mut server.batch_eval_gc_threshold,
                &file.batch_eval_gc_threshold,
                "server.batch_eval_gc_threshold",
            ),
            (
                &mut server.deployment_gc_threshold,
                &file.deployment_gc_threshold,
                "server.deployment_gc_threshold",
            ),
            (
                &mut server.acl_token_gc_threshold,
                &file.acl_token_gc_threshold,
                "server.acl_token_gc_threshold",
            ),
        ] {
            set_duration(value, given, key)?;
        }
        set_duration(
            &mut server.job_gc_interval,
            &file.job_gc_interval,
            "server.job_gc_interval",
        )?;
        if server.job_gc_interval.is_zero() {
            return Err((
                "server.job_gc_interval".to_string(),
                "must be greater than zero".to_string(),
            ));
        }
        set(&mut server.raft_protocol, &file.raft_protocol);
        if !(2..=3).contains(&server.raft_protocol) {
            return Err((
                "server.raft_protocol".to_string(),
                format!("unsupported raft protocol {}", server.raft_protocol),
            ));
        }
        set(&mut server.raft_multiplier, &file.raft_multiplier);
        if !(1..=10).contains(&server.raft_multiplier) {
            return Err((
                "server.raft_multiplier".to_string(),
                "must be between 1 and 10".to_string(),
            ));
        }
        set(
            &mut server.raft_snapshot_threshold,
            &file.raft_snapshot_threshold,
        );
        set(&mut server.raft_trailing_logs, &file.raft_trailing_logs);
        set(&mut server.retry_join, &file.retry_join);
        set(&mut server.start_join, &file.start_join);
        set(&mut server.retry_max, &file.retry_max);
        set_duration(
            &mut server.retry_interval,
            &file.retry_interval,
            "server.retry_interval",
        )?;
        if let Some(join) = &file.server_join {
            set(&mut server.retry_join, &join.retry_join);
            set(&mut server.start_join, &join.start_join);
            set(&mut server.retry_max, &join.retry_max);
            set_duration(
                &mut server.retry_interval,
                &join.retry_interval,
                "server.server_join.retry_interval",
            )?;
        }
        set(&mut server.rejoin_after_leave, &file.rejoin_after_leave);
        set(&mut server.authoritative_region, &file.authoritative_region);
        if file.encrypt.is_some() {
            server.encrypt = file.encrypt.clone();
        }
        if let Some(defaults) = &file.default_scheduler_config {
            let target = &mut server.default_scheduler_config;
            set(
                &mut target.scheduler_algorithm,
                &defaults.scheduler_algorithm,
            );
            set(
                &mut target.memory_oversubscription_enabled,
                &defaults.memory_oversubscription_enabled,
            );
            set(
                &mut target.reject_job_registration,
                &defaults.reject_job_registration,
            );
            set(&mut target.pause_eval_broker, &defaults.pause_eval_broker);
            if let Some(preemption) = &defaults.preemption_config {
                let target = &mut target.preemption_config;
                set(
                    &mut target.system_scheduler_enabled,
                    &preemption.system_scheduler_enabled,
                );
                set(
                    &mut target.sys_batch_scheduler_enabled,
                    &preemption.sysbatch_scheduler_enabled,
                );
                set(
                    &mut target.batch_scheduler_enabled,
                    &preemption.batch_scheduler_enabled,
                );
                set(
                    &mut target.service_scheduler_enabled,
                    &preemption.service_scheduler_enabled,
                );
            }
            *target = target.clone().validated().map_err(|message| {
                (
                    "server.default_scheduler_config.scheduler_algorithm".to_string(),
                    message,
                )
            })?;
        }
        Ok(())
    }
}

/// Decodes a gossip key as Serf does: base64 of an AES-128, -192 or -256 key.
pub fn decode_gossip_key(key: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|error| format!("failed to decode key: {error}"))?;
    match bytes.len() {
        16 | 24 | 32 => Ok(bytes),
        length => Err(format!("key size must be 16, 24 or 32 bytes, got {length}")),
    }
}
