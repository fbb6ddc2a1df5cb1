//! The job as a client submits it (Nomad's `api` package shape): every
//! field optional, so that "not given" can take the per-type default while
//! an explicit zero is kept. `POST /v1/jobs/parse` returns this shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::{Constraint, NetworkResource, RequestedDevice, SpreadTarget, TaskLifecycle};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiJob {
    pub stop: Option<bool>,
    pub region: Option<String>,
    pub namespace: Option<String>,
    #[serde(rename = "ID")]
    pub id: Option<String>,
    #[serde(rename = "ParentID")]
    pub parent_id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "Type")]
    pub job_type: Option<String>,
    pub priority: Option<i64>,
    pub all_at_once: Option<bool>,
    pub datacenters: Option<Vec<String>>,
    pub node_pool: Option<String>,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<ApiAffinity>>,
    pub spreads: Option<Vec<ApiSpread>>,
    pub task_groups: Option<Vec<ApiTaskGroup>>,
    pub update: Option<ApiUpdateStrategy>,
    pub multiregion: Option<Value>,
    pub periodic: Option<ApiPeriodic>,
    pub parameterized_job: Option<ApiParameterized>,
    pub dispatched: Option<bool>,
    pub dispatch_idempotency_token: Option<String>,
    pub payload: Option<String>,
    pub reschedule: Option<ApiReschedulePolicy>,
    pub migrate: Option<ApiMigrateStrategy>,
    pub meta: Option<BTreeMap<String, String>>,
    pub consul_namespace: Option<String>,
    pub vault_namespace: Option<String>,
    #[serde(rename = "NomadTokenID")]
    pub nomad_token_id: Option<String>,
    pub status: Option<String>,
    pub status_description: Option<String>,
    pub stable: Option<bool>,
    pub version: Option<u64>,
    pub submit_time: Option<i64>,
    pub create_index: Option<u64>,
    pub modify_index: Option<u64>,
    pub job_modify_index: Option<u64>,
    #[serde(rename = "UI")]
    pub ui: Option<Value>,
    pub version_tag: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiAffinity {
    #[serde(rename = "LTarget")]
    pub l_target: Option<String>,
    #[serde(rename = "RTarget")]
    pub r_target: Option<String>,
    #[serde(rename = "Operand")]
    pub operand: Option<String>,
    #[serde(rename = "Weight")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiSpread {
    pub attribute: Option<String>,
    pub weight: Option<i64>,
    pub spread_target: Option<Vec<SpreadTarget>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiUpdateStrategy {
    pub stagger: Option<i64>,
    pub max_parallel: Option<i64>,
    pub health_check: Option<String>,
    pub min_healthy_time: Option<i64>,
    pub healthy_deadline: Option<i64>,
    pub progress_deadline: Option<i64>,
    pub auto_revert: Option<bool>,
    pub auto_promote: Option<bool>,
    pub canary: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiMigrateStrategy {
    pub max_parallel: Option<i64>,
    pub health_check: Option<String>,
    pub min_healthy_time: Option<i64>,
    pub healthy_deadline: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiRestartPolicy {
    pub attempts: Option<i64>,
    pub interval: Option<i64>,
    pub delay: Option<i64>,
    pub mode: Option<String>,
    pub render_templates: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiReschedulePolicy {
    pub attempts: Option<i64>,
    pub interval: Option<i64>,
    pub delay: Option<i64>,
    pub delay_function: Option<String>,
    pub max_delay: Option<i64>,
    pub unlimited: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiEphemeralDisk {
    pub sticky: Option<bool>,
    #[serde(rename = "SizeMB")]
    pub size_mb: Option<i64>,
    pub migrate: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiPeriodic {
    pub enabled: Option<bool>,
    pub spec: Option<String>,
    pub specs: Option<Vec<String>>,
    pub spec_type: Option<String>,
    pub prohibit_overlap: Option<bool>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiParameterized {
    pub payload: Option<String>,
    pub meta_required: Option<Vec<String>>,
    pub meta_optional: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiTaskGroup {
    pub name: Option<String>,
    pub count: Option<i64>,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<ApiAffinity>>,
    pub tasks: Option<Vec<ApiTask>>,
    pub spreads: Option<Vec<ApiSpread>>,
    pub volumes: Option<Value>,
    pub restart_policy: Option<ApiRestartPolicy>,
    pub disconnect: Option<Value>,
    pub reschedule_policy: Option<ApiReschedulePolicy>,
    pub ephemeral_disk: Option<ApiEphemeralDisk>,
    pub update: Option<ApiUpdateStrategy>,
    pub migrate: Option<ApiMigrateStrategy>,
    pub networks: Option<Vec<NetworkResource>>,
    pub meta: Option<BTreeMap<String, String>>,
    pub services: Option<Value>,
    pub shutdown_delay: Option<i64>,
    pub stop_after_client_disconnect: Option<i64>,
    pub max_client_disconnect: Option<i64>,
    pub scaling: Option<Value>,
    pub consul: Option<Value>,
    pub prevent_reschedule_on_lost: Option<bool>,
    pub max_run_duration: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiResources {
    #[serde(rename = "CPU")]
    pub cpu: Option<i64>,
    #[serde(rename = "Cores")]
    pub cores: Option<i64>,
    #[serde(rename = "MemoryMB")]
    pub memory_mb: Option<i64>,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: Option<i64>,
    #[serde(rename = "DiskMB")]
    pub disk_mb: Option<i64>,
    #[serde(rename = "Networks")]
    pub networks: Option<Vec<NetworkResource>>,
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<RequestedDevice>>,
    #[serde(rename = "IOPS")]
    pub iops: Option<i64>,
    #[serde(rename = "NUMA")]
    pub numa: Option<Value>,
    #[serde(rename = "SecretsMB")]
    pub secrets_mb: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiLogConfig {
    pub max_files: Option<i64>,
    #[serde(rename = "MaxFileSizeMB")]
    pub max_file_size_mb: Option<i64>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiArtifact {
    pub getter_source: Option<String>,
    pub getter_options: Option<BTreeMap<String, String>>,
    pub getter_headers: Option<BTreeMap<String, String>>,
    pub getter_mode: Option<String>,
    pub getter_insecure: Option<bool>,
    pub relative_dest: Option<String>,
    pub chown: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiTask {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub user: Option<String>,
    pub lifecycle: Option<TaskLifecycle>,
    pub config: Option<BTreeMap<String, Value>>,
    pub constraints: Option<Vec<Constraint>>,
    pub affinities: Option<Vec<ApiAffinity>>,
    pub env: Option<BTreeMap<String, String>>,
    pub services: Option<Value>,
    pub resources: Option<ApiResources>,
    pub restart_policy: Option<ApiRestartPolicy>,
    pub meta: Option<BTreeMap<String, String>>,
    pub kill_timeout: Option<i64>,
    pub log_config: Option<ApiLogConfig>,
    pub artifacts: Option<Vec<ApiArtifact>>,
    pub vault: Option<Value>,
    pub consul: Option<Value>,
    pub templates: Option<Value>,
    pub dispatch_payload: Option<Value>,
    pub volume_mounts: Option<Value>,
    #[serde(rename = "CSIPluginConfig")]
    pub csi_plugin_config: Option<Value>,
    pub leader: Option<bool>,
    pub shutdown_delay: Option<i64>,
    pub kill_signal: Option<String>,
    pub kind: Option<String>,
    pub scaling_policies: Option<Value>,
    pub identity: Option<Value>,
    pub identities: Option<Value>,
    pub actions: Option<Value>,
    pub schedule: Option<Value>,
    pub secrets: Option<Value>,
}
