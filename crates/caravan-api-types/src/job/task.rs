//! A task and what it asks for, as the server stores and emits it
//! (`GET /v1/job/:id`): every field present, empty lists and maps as
//! `null`, durations as integer nanoseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::group::RestartPolicy;

/// `{LTarget, RTarget, Operand}`: a node must satisfy it to be feasible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Constraint {
    #[serde(rename = "LTarget")]
    pub l_target: String,
    #[serde(rename = "RTarget")]
    pub r_target: String,
    #[serde(rename = "Operand")]
    pub operand: String,
}

impl Constraint {
    pub fn new(l_target: &str, operand: &str, r_target: &str) -> Self {
        Self {
            l_target: l_target.into(),
            r_target: r_target.into(),
            operand: operand.into(),
        }
    }
}

impl std::fmt::Display for Constraint {
    /// Nomad's `Constraint.String()`, the key of `ConstraintFiltered`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.l_target, self.operand, self.r_target)
    }
}

/// A preference: nodes matching it score `Weight` (−100..100) higher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Affinity {
    #[serde(rename = "LTarget")]
    pub l_target: String,
    #[serde(rename = "RTarget")]
    pub r_target: String,
    #[serde(rename = "Operand")]
    pub operand: String,
    #[serde(rename = "Weight")]
    pub weight: i8,
}

/// Spread allocations over the values of a node attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Spread {
    pub attribute: String,
    pub weight: i8,
    pub spread_target: Option<Vec<SpreadTarget>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpreadTarget {
    pub value: String,
    pub percent: u8,
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A port a group or task asks for. Whole-struct omitempty, as Nomad
/// emits it: a dynamic port is `{"Label":"http","To":8080,"HostNetwork":"default"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The host port: the static port asked for, or the one assigned.
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub value: i32,
    /// The port inside the task's network namespace (−1: same as `Value`).
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub to: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_network: String,
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_collision: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DnsConfig {
    pub servers: Option<Vec<String>>,
    pub searches: Option<Vec<String>>,
    pub options: Option<Vec<String>>,
}

/// A network a group or task asks for (and, in an allocation, what it got).
/// Whole-struct omitempty, as Nomad emits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(rename = "CIDR", skip_serializing_if = "String::is_empty")]
    pub cidr: String,
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(rename = "MBits", skip_serializing_if = "is_zero_i32")]
    pub mbits: i32,
    #[serde(rename = "DNS", skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_ports: Option<Vec<Port>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_ports: Option<Vec<Port>>,
    #[serde(rename = "CNI", skip_serializing_if = "Option::is_none")]
    pub cni: Option<Value>,
}

impl NetworkResource {
    /// Every port, static ones first.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.reserved_ports
            .iter()
            .flatten()
            .chain(self.dynamic_ports.iter().flatten())
    }
}

/// A device a task asks for (`gpu`, `nvidia/gpu`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestedDevice {
    pub name: String,
    pub count: u64,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
}

/// What a task asks for. Defaults: 100 MHz CPU, 300 MB memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    #[serde(rename = "CPU")]
    pub cpu: i64,
    #[serde(rename = "Cores")]
    pub cores: i64,
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: i64,
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
    #[serde(rename = "IOPS")]
    pub iops: i64,
    #[serde(rename = "Networks")]
    pub networks: Option<Vec<NetworkResource>>,
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<RequestedDevice>>,
    #[serde(rename = "NUMA")]
    pub numa: Option<Value>,
    #[serde(rename = "SecretsMB")]
    pub secrets_mb: i64,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: 100,
            cores: 0,
            memory_mb: 300,
            memory_max_mb: 0,
            disk_mb: 0,
            iops: 0,
            networks: None,
            devices: None,
            numa: None,
            secrets_mb: 0,
        }
    }
}

/// Log rotation: `alloc/logs/<task>.stdout.N`, at most `MaxFiles` of
/// `MaxFileSizeMB` each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    #[serde(rename = "MaxFiles")]
    pub max_files: i64,
    #[serde(rename = "MaxFileSizeMB")]
    pub max_file_size_mb: i64,
    #[serde(rename = "Disabled")]
    pub disabled: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_files: 10,
            max_file_size_mb: 10,
            disabled: false,
        }
    }
}

/// When a task runs relative to the group's main tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskLifecycle {
    /// `prestart`, `poststart` or `poststop`.
    pub hook: String,
    pub sidecar: bool,
}

/// A file fetched into the task directory before it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskArtifact {
    pub getter_source: String,
    pub getter_options: Option<BTreeMap<String, String>>,
    pub getter_headers: Option<BTreeMap<String, String>>,
    pub getter_mode: String,
    pub getter_insecure: bool,
    pub relative_dest: String,
    pub chown: bool,
}

/// The task's default workload identity (always set on a stored job).
pub fn default_identity() -> Value {
    serde_json::json!({
        "Name": "default", "Audience": ["nomadproject.io"], "ChangeMode": "",
        "ChangeSignal": "", "Env": false, "File": false, "Filepath": "",
        "ServiceName": "", "TTL": 0, "ExtraClaims": null
    })
}

/// One task of a group, in Nomad's wire order. Blocks Caravan does not act
/// on yet (services, Vault, Consul, templates, secrets, identities, CSI)
/// are kept as they were submitted, so a job read back is the job sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    pub name: String,
    pub driver: String,
    pub user: String,
    pub config: Option<BTreeMap<String, Value>>,
    pub env: Option<BTreeMap<String, String>>,
    pub services: Option<Value>,
    pub vault: Option<Value>,
    pub secrets: Option<Value>,
    pub consul: Option<Value>,
    pub templates: Option<Value>,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<Affinity>>,
    pub resources: Resources,
    pub restart_policy: Option<RestartPolicy>,
    pub dispatch_payload: Option<Value>,
    pub lifecycle: Option<TaskLifecycle>,
    pub meta: Option<BTreeMap<String, String>>,
    pub kill_timeout: i64,
    pub log_config: LogConfig,
    pub artifacts: Option<Vec<TaskArtifact>>,
    pub leader: bool,
    pub shutdown_delay: i64,
    pub volume_mounts: Option<Value>,
    pub scaling_policies: Option<Value>,
    pub kill_signal: String,
    pub kind: String,
    #[serde(rename = "CSIPluginConfig")]
    pub csi_plugin_config: Option<Value>,
    pub identity: Option<Value>,
    pub identities: Option<Value>,
    pub actions: Option<Value>,
    pub schedule: Option<Value>,
}

impl Default for Task {
    fn default() -> Self {
        Self {
            name: String::new(),
            driver: String::new(),
            user: String::new(),
            config: None,
            env: None,
            services: None,
            vault: None,
            secrets: None,
            consul: None,
            templates: None,
            constraints: None,
            affinities: None,
            resources: Resources::default(),
            restart_policy: None,
            dispatch_payload: None,
            lifecycle: None,
            meta: None,
            kill_timeout: 5_000_000_000,
            log_config: LogConfig::default(),
            artifacts: None,
            leader: false,
            shutdown_delay: 0,
            volume_mounts: None,
            scaling_policies: None,
            kill_signal: String::new(),
            kind: String::new(),
            csi_plugin_config: None,
            identity: Some(default_identity()),
            identities: None,
            actions: None,
            schedule: None,
        }
    }
}

impl Task {
    /// A main task: not a prestart/poststart/poststop hook task (a
    /// poststart sidecar counts as main for liveness, as in Nomad).
    pub fn is_main(&self) -> bool {
        self.lifecycle
            .as_ref()
            .is_none_or(|hook| hook.hook.is_empty())
    }
}
