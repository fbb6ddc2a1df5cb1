//! Agent configuration files: Nomad's HCL and JSON keys.
//!
//! Each file is parsed to a JSON value (HCL through `hcl-rs`), checked on its
//! own against [`FileConfig`] so an error can name the file and the key, and
//! then deep-merged with the files before it (later files win, as in Nomad).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use crate::duration::ConfigDuration;
use crate::error::ConfigError;

/// Everything a configuration file may say. Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub name: Option<String>,
    pub region: Option<String>,
    pub datacenter: Option<String>,
    pub data_dir: Option<String>,
    pub bind_addr: Option<String>,
    pub log_level: Option<String>,
    pub log_json: Option<bool>,
    pub addresses: Option<AddressesFile>,
    pub advertise: Option<AddressesFile>,
    pub ports: Option<PortsFile>,
    pub server: Option<ServerFile>,
    pub client: Option<ClientFile>,
    pub autopilot: Option<AutopilotFile>,
    pub acl: Option<AclFile>,
    pub http_api_response_headers: Option<BTreeMap<String, String>>,
    pub leave_on_interrupt: Option<bool>,
    pub leave_on_terminate: Option<bool>,
    // Nomad keys Caravan accepts so existing files load, but that have no
    // effect yet; the agent logs a warning naming each one it sees.
    pub telemetry: Option<Value>,
    pub consul: Option<Value>,
    pub vault: Option<Value>,
    pub ui: Option<Value>,
    pub plugin: Option<Value>,
    pub limits: Option<crate::limits::LimitsFile>,
    pub tls: Option<crate::tls::TlsFile>,
    pub enable_syslog: Option<bool>,
    pub syslog_facility: Option<String>,
    pub disable_update_check: Option<bool>,
    pub enable_debug: Option<bool>,
    pub plugin_dir: Option<String>,
    pub log_file: Option<String>,
}

/// Keys of [`FileConfig`] that load but do nothing yet.
pub const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "telemetry",
    "consul",
    "vault",
    "ui",
    "plugin",
    "enable_syslog",
    "syslog_facility",
    "disable_update_check",
    "enable_debug",
    "plugin_dir",
    "log_file",
    "log_json",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressesFile {
    pub http: Option<String>,
    pub rpc: Option<String>,
    pub serf: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsFile {
    pub http: Option<u16>,
    pub rpc: Option<u16>,
    pub serf: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerJoinFile {
    pub retry_join: Option<Vec<String>>,
    pub retry_max: Option<u32>,
    pub retry_interval: Option<ConfigDuration>,
    pub start_join: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub enabled: Option<bool>,
    pub bootstrap_expect: Option<u32>,
    pub data_dir: Option<String>,
    pub num_schedulers: Option<u32>,
    pub enabled_schedulers: Option<Vec<String>>,
    pub heartbeat_grace: Option<ConfigDuration>,
    pub min_heartbeat_ttl: Option<ConfigDuration>,
    pub max_heartbeats_per_second: Option<f64>,
    pub failover_heartbeat_ttl: Option<ConfigDuration>,
    pub node_gc_threshold: Option<ConfigDuration>,
    pub job_gc_interval: Option<ConfigDuration>,
    pub job_gc_threshold: Option<ConfigDuration>,
    pub eval_gc_threshold: Option<ConfigDuration>,
    pub batch_eval_gc_threshold: Option<ConfigDuration>,
    pub deployment_gc_threshold: Option<ConfigDuration>,
    pub acl_token_gc_threshold: Option<ConfigDuration>,
    pub raft_protocol: Option<u32>,
    pub raft_multiplier: Option<u32>,
    pub raft_snapshot_threshold: Option<u64>,
    pub raft_trailing_logs: Option<u64>,
    pub server_join: Option<ServerJoinFile>,
    pub retry_join: Option<Vec<String>>,
    pub start_join: Option<Vec<String>>,
    pub retry_max: Option<u32>,
    pub retry_interval: Option<ConfigDuration>,
    pub rejoin_after_leave: Option<bool>,
    pub default_scheduler_config: Option<DefaultSchedulerConfigFile>,
    pub authoritative_region: Option<String>,
    pub encrypt: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSchedulerConfigFile {
    pub scheduler_algorithm: Option<String>,
    pub memory_oversubscription_enabled: Option<bool>,
    pub reject_job_registration: Option<bool>,
    pub pause_eval_broker: Option<bool>,
    pub preemption_config: Option<PreemptionFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreemptionFile {
    pub system_scheduler_enabled: Option<bool>,
    pub sysbatch_scheduler_enabled: Option<bool>,
    pub batch_scheduler_enabled: Option<bool>,
    pub service_scheduler_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedFile {
    pub cpu: Option<u64>,
    pub memory: Option<u64>,
    pub disk: Option<u64>,
    pub reserved_ports: Option<String>,
    pub cores: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostVolumeFile {
    pub path: String,
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub enabled: Option<bool>,
    pub servers: Option<Vec<String>>,
    pub server_join: Option<ServerJoinFile>,
    pub state_dir: Option<String>,
    pub alloc_dir: Option<String>,
    pub node_class: Option<String>,
    pub node_pool: Option<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub options: Option<BTreeMap<String, String>>,
    pub reserved: Option<ReservedFile>,
    pub host_volume: Option<BTreeMap<String, HostVolumeFile>>,
    pub network_interface: Option<String>,
    pub network_speed: Option<u64>,
    pub cpu_total_compute: Option<u64>,
    pub memory_total_mb: Option<u64>,
    pub disk_total_mb: Option<u64>,
    pub disk_free_mb: Option<u64>,
    pub max_kill_timeout: Option<ConfigDuration>,
    pub gc_interval: Option<ConfigDuration>,
    pub gc_max_allocs: Option<u64>,
    pub gc_disk_usage_threshold: Option<f64>,
    pub gc_inode_usage_threshold: Option<f64>,
    pub gc_parallel_destroys: Option<u64>,
    pub no_host_uuid: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutopilotFile {
    pub cleanup_dead_servers: Option<bool>,
    pub last_contact_threshold: Option<ConfigDuration>,
    pub max_trailing_logs: Option<u64>,
    pub min_quorum: Option<u64>,
    pub server_stabilization_time: Option<ConfigDuration>,
    pub enable_redundancy_zones: Option<bool>,
    pub disable_upgrade_migration: Option<bool>,
    pub enable_custom_upgrades: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFile {
    pub enabled: Option<bool>,
    pub token_ttl: Option<ConfigDuration>,
    pub policy_ttl: Option<ConfigDuration>,
    pub role_ttl: Option<ConfigDuration>,
    pub token_min_expiration_ttl: Option<ConfigDuration>,
    pub token_max_expiration_ttl: Option<ConfigDuration>,
    pub replication_token: Option<String>,
}

/// Reads the files a `-config` argument names: the file itself, or every
/// `.hcl` and `.json` file of a directory in name order.
pub fn files_of(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_error = |source: std::io::Error| ConfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let file = entry.path();
        let is_config = matches!(
            file.extension().and_then(|ext| ext.to_str()),
            Some("hcl" | "json")
        );
        if is_config && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses one file to a normalised JSON value and checks it against the
/// schema, so that an error names this file and the offending key.
pub fn load_file(path: &Path) -> Result<Value, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: shown.clone(),
        source,
    })?;
    let is_json = path.extension().and_then(|ext| ext.to_str()) == Some("json");
    let value: Value = if is_json {
        serde_json::from_str(&text).map_err(|error| ConfigError::Parse {
            path: shown.clone(),
            message: error.to_string(),
        })?
    } else {
        hcl::from_str(&text).map_err(|error| ConfigError::Parse {
            path: shown.clone(),
            message: error.to_string(),
        })?
    };
    let value = merge_block_lists(value);
    if !value.is_object() {
        return Err(ConfigError::Parse {
            path: shown,
            message: "the top level must be an object".to_string(),
        });
    }
    check(&value).map_err(|(key, message)| ConfigError::Key {
        path: shown,
        key,
        message,
    })?;
    Ok(value)
}

/// Checks a value against [`FileConfig`]; on failure returns the dotted key
/// and what is wrong with it.
pub fn check(value: &Value) -> Result<FileConfig, (String, String)> {
    serde_path_to_error::deserialize::<_, FileConfig>(value).map_err(|error| {
        let mut key = error.path().to_string();
        let mut message = error.inner().to_string();
        // serde reports an unknown key against its parent; name the key itself.
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some((field, _)) = rest.split_once('`') {
                key = if key == "." || key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
                message = "unknown configuration key".to_string();
            }
        }
        (key, message)
    })
}

/// HCL turns a block written twice (`server {..} server {..}`) into a list
/// of objects, and Nomad's JSON form allows `"server": [{..}]`; Nomad merges
/// those, so every list made only of objects is merged into one object.
pub fn merge_block_lists(value: Value) -> Value {
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut merged = Value::Object(Default::default());
            for item in items {
                deep_merge(&mut merged, merge_block_lists(item));
            }
            merged
        }
        Value::Array(items) => Value::Array(items.into_iter().map(merge_block_lists).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, merge_block_lists(value)))
                .collect(),
        ),
        other => other,
    }
}

/// Merges `overlay` into `base`: objects key by key, anything else replaced.
pub fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}
