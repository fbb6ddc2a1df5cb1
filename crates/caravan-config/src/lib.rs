//! The agent's configuration: Nomad's keys from HCL and JSON files, Nomad's
//! command-line flags, and the defaults of `agent -dev`.
//!
//! Precedence follows Nomad: built-in defaults (or the dev defaults), then
//! each `-config` file in order, then flags.

pub mod file;
pub mod flags;
pub mod limits;
mod network;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use serde_json::Value;

use crate::file::{ConfigDuration, FileConfig};
use crate::flags::{parse_go_bool, parse_go_flags, FlagKind};

pub use network::first_private_ip;

pub const DEFAULT_HTTP_PORT: u16 = 4646;
pub const DEFAULT_RPC_PORT: u16 = 4647;
pub const DEFAULT_SERF_PORT: u16 = 4648;

/// Why the configuration could not be loaded. Every variant names where the
/// problem is: the flag, or the file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Flag(String),
    #[error("error reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("error parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("error in {path}: {key}: {message}")]
    Key {
        path: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub rpc: u16,
    pub serf: u16,
}

/// The address each listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub http: IpAddr,
    pub rpc: IpAddr,
    pub serf: IpAddr,
}

/// What the agent tells others to reach it on; unset parts are derived from
/// the bind addresses once the listeners are bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertiseAddrs {
    pub http: Option<String>,
    pub rpc: Option<String>,
    pub serf: Option<String>,
}

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
    /// The decoded gossip key, when one is set.
    pub fn encrypt_key(&self) -> Option<Vec<u8>> {
        self.encrypt
            .as_deref()
            .and_then(|key| decode_gossip_key(key).ok())
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu: u64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub reserved_ports: String,
    pub cores: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub enabled: bool,
    pub servers: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub alloc_dir: Option<PathBuf>,
    pub node_class: String,
    pub node_pool: String,
    pub meta: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub reserved: Reserved,
    pub host_volumes: BTreeMap<String, HostVolume>,
    pub network_interface: String,
    pub network_speed: u64,
    pub cpu_total_compute: u64,
    pub memory_total_mb: u64,
    pub disk_total_mb: u64,
    pub disk_free_mb: u64,
    pub max_kill_timeout: Duration,
    pub gc_interval: Duration,
    pub no_host_uuid: bool,
    /// raw_exec runs tasks without isolation, so it is off unless enabled
    /// (`plugin "raw_exec" { config { enabled = true } }`, the client option
    /// `driver.raw_exec.enable`, or `-dev`).
    pub raw_exec_enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub enabled: bool,
    pub token_ttl: Duration,
    pub policy_ttl: Duration,
    pub role_ttl: Duration,
    /// Bounds on a new token's expiration.
    pub token_min_expiration_ttl: Duration,
    pub token_max_expiration_ttl: Duration,
    pub replication_token: String,
}

/// The agent's resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub node_name: String,
    pub region: String,
    pub datacenter: String,
    pub data_dir: Option<PathBuf>,
    pub bind_addr: IpAddr,
    pub addresses: Addresses,
    pub advertise: AdvertiseAddrs,
    pub ports: Ports,
    pub log_level: String,
    pub dev_mode: bool,
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub autopilot: AutopilotConfiguration,
    pub acl: AclConfig,
    pub http_api_response_headers: BTreeMap<String, String>,
    pub leave_on_interrupt: bool,
    pub leave_on_terminate: bool,
    /// Connection limits on the HTTP and RPC ports (Nomad's `limits`).
    pub limits: limits::Limits,
    /// TLS on the HTTP and RPC ports (Nomad's `tls`).
    pub tls: tls::TlsConfig,
    /// The configuration files that were loaded, in order.
    pub files: Vec<String>,
    /// Nomad keys that were set but have no effect in Caravan yet.
    pub keys_without_effect: Vec<String>,
}

const AGENT_FLAGS: &[(&str, FlagKind)] = &[
    ("dev", FlagKind::Bool),
    ("server", FlagKind::Bool),
    ("client", FlagKind::Bool),
    ("acl-enabled", FlagKind::Bool),
    ("bootstrap-expect", FlagKind::Value),
    ("data-dir", FlagKind::Value),
    ("bind", FlagKind::Value),
    ("region", FlagKind::Value),
    ("dc", FlagKind::Value),
    ("node", FlagKind::Value),
    ("config", FlagKind::Value),
    ("log-level", FlagKind::Value),
    ("servers", FlagKind::Value),
    ("join", FlagKind::Value),
    ("retry-join", FlagKind::Value),
    ("retry-max", FlagKind::Value),
    ("retry-interval", FlagKind::Value),
    ("node-class", FlagKind::Value),
    ("node-pool", FlagKind::Value),
    ("meta", FlagKind::Value),
    ("network-interface", FlagKind::Value),
    ("state-dir", FlagKind::Value),
    ("alloc-dir", FlagKind::Value),
    ("raft-protocol", FlagKind::Value),
    ("encrypt", FlagKind::Value),
];

impl AgentConfig {
    /// Builds the configuration from the arguments that follow `agent`.
    pub fn from_args(args: &[String]) -> Result<Self, ConfigError> {
        let (flags, rest) = parse_go_flags(args, AGENT_FLAGS)?;
        if let Some(extra) = rest.first() {
            return Err(ConfigError::Flag(format!(
                "unexpected argument {extra:?}: the agent command takes flags only"
            )));
        }
        let flag_bool = |name: &str| {
            flags
                .iter()
                .rev()
                .find(|flag| flag.name == name)
                .and_then(|flag| parse_go_bool(&flag.value))
        };
        let dev_mode = flag_bool("dev").unwrap_or(false);

        let mut merged = Value::Object(Default::default());
        let mut files = Vec::new();
        for flag in flags.iter().filter(|flag| flag.name == "config") {
            for path in file::files_of(std::path::Path::new(&flag.value))? {
                file::deep_merge(&mut merged, file::load_file(&path)?);
                files.push(path.display().to_string());
            }
        }
        let from_files = file::check(&merged).map_err(|(key, message)| ConfigError::Key {
            path: files.join(", "),
            key,
            message,
        })?;

        let mut config = Self::defaults(dev_mode);
        config.files = files;
        config.apply_file(&from_files)?;
        config.apply_flags(&flags)?;
        config.finish()?;
        Ok(config)
    }

    /// Nomad's defaults, or those of `agent -dev`.
    pub fn defaults(dev_mode: bool) -> Self {
        let bind_addr = if dev_mode {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        Self {
            node_name: hostname(),
            region: "global".to_string(),
            datacenter: "dc1".to_string(),
            data_dir: None,
            bind_addr,
            addresses: Addresses {
                http: bind_addr,
                rpc: bind_addr,
                serf: bind_addr,
            },
            advertise: AdvertiseAddrs::default(),
            ports: Ports {
                http: DEFAULT_HTTP_PORT,
                rpc: DEFAULT_RPC_PORT,
                serf: DEFAULT_SERF_PORT,
            },
            log_level: if dev_mode { "DEBUG" } else { "INFO" }.to_string(),
            dev_mode,
            server: ServerConfig {
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
            },
            client: ClientConfig {
                enabled: dev_mode,
                servers: Vec::new(),
                state_dir: None,
                alloc_dir: None,
                node_class: String::new(),
                node_pool: "default".to_string(),
                meta: BTreeMap::new(),
                options: BTreeMap::new(),
                reserved: Reserved::default(),
                host_volumes: BTreeMap::new(),
                network_interface: String::new(),
                network_speed: 0,
                cpu_total_compute: 0,
                memory_total_mb: 0,
                disk_total_mb: 0,
                disk_free_mb: 0,
                max_kill_timeout: Duration::from_secs(30),
                gc_interval: Duration::from_secs(60),
                no_host_uuid: true,
                raw_exec_enabled: dev_mode,
            },
            autopilot: AutopilotConfiguration::initial(),
            acl: AclConfig {
                enabled: false,
                token_ttl: Duration::from_secs(30),
                policy_ttl: Duration::from_secs(30),
                role_ttl: Duration::from_secs(30),
                token_min_expiration_ttl: Duration::from_secs(60),
                token_max_expiration_ttl: Duration::from_secs(24 * 3600),
                replication_token: String::new(),
            },
            http_api_response_headers: BTreeMap::new(),
            leave_on_interrupt: false,
            leave_on_terminate: false,
            limits: limits::Limits::default(),
            tls: tls::TlsConfig::default(),
            files: Vec::new(),
            keys_without_effect: Vec::new(),
        }
    }

    fn apply_file(&mut self, file: &FileConfig) -> Result<(), ConfigError> {
        let files = self.files.join(", ");
        let key_error = |key: &str, message: String| ConfigError::Key {
            path: files.clone(),
            key: key.to_string(),
            message,
        };
        set(&mut self.node_name, &file.name);
        set(&mut self.region, &file.region);
        set(&mut self.datacenter, &file.datacenter);
        if let Some(dir) = &file.data_dir {
            self.data_dir = Some(PathBuf::from(dir));
        }
        if let Some(bind) = &file.bind_addr {
            self.bind_addr = parse_ip(bind).map_err(|message| key_error("bind_addr", message))?;
            self.addresses = Addresses {
                http: self.bind_addr,
                rpc: self.bind_addr,
                serf: self.bind_addr,
            };
        }
        if let Some(addresses) = &file.addresses {
            for (key, value, slot) in [
                ("addresses.http", &addresses.http, &mut self.addresses.http),
                ("addresses.rpc", &addresses.rpc, &mut self.addresses.rpc),
                ("addresses.serf", &addresses.serf, &mut self.addresses.serf),
            ] {
                if let Some(value) = value {
                    *slot = parse_ip(value).map_err(|message| key_error(key, message))?;
                }
            }
        }
        if let Some(advertise) = &file.advertise {
            set_opt(&mut self.advertise.http, &advertise.http);
            set_opt(&mut self.advertise.rpc, &advertise.rpc);
            set_opt(&mut self.advertise.serf, &advertise.serf);
        }
        if let Some(ports) = &file.ports {
            set(&mut self.ports.http, &ports.http);
            set(&mut self.ports.rpc, &ports.rpc);
            set(&mut self.ports.serf, &ports.serf);
        }
        set(&mut self.log_level, &file.log_level);
        if let Some(headers) = &file.http_api_response_headers {
            self.http_api_response_headers
                .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        set(&mut self.leave_on_interrupt, &file.leave_on_interrupt);
        set(&mut self.leave_on_terminate, &file.leave_on_terminate);
        if let Some(server) = &file.server {
            self.apply_server_file(server)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        if let Some(client) = &file.client {
            self.apply_client_file(client)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        if let Some(autopilot) = &file.autopilot {
            let target = &mut self.autopilot;
            set(
                &mut target.cleanup_dead_servers,
                &autopilot.cleanup_dead_servers,
            );
            set_nanos(
                &mut target.last_contact_threshold,
                &autopilot.last_contact_threshold,
            );
            set(&mut target.max_trailing_logs, &autopilot.max_trailing_logs);
            set(&mut target.min_quorum, &autopilot.min_quorum);
            set_nanos(
                &mut target.server_stabilization_time,
                &autopilot.server_stabilization_time,
            );
            set(
                &mut target.enable_redundancy_zones,
                &autopilot.enable_redundancy_zones,
            );
            set(
                &mut target.disable_upgrade_migration,
                &autopilot.disable_upgrade_migration,
            );
            set(
                &mut target.enable_custom_upgrades,
                &autopilot.enable_custom_upgrades,
            );
        }
        if let Some(acl) = &file.acl {
            set(&mut self.acl.enabled, &acl.enabled);
            set_duration(&mut self.acl.token_ttl, &acl.token_ttl, "acl.token_ttl")
                .map_err(|(key, message)| key_error(&key, message))?;
            set_duration(&mut self.acl.policy_ttl, &acl.policy_ttl, "acl.policy_ttl")
                .map_err(|(key, message)| key_error(&key, message))?;
            set_duration(&mut self.acl.role_ttl, &acl.role_ttl, "acl.role_ttl")
                .map_err(|(key, message)| key_error(&key, message))?;
            set_duration(
                &mut self.acl.token_min_expiration_ttl,
                &acl.token_min_expiration_ttl,
                "acl.token_min_expiration_ttl",
            )
            .map_err(|(key, message)| key_error(&key, message))?;
            set_duration(
                &mut self.acl.token_max_expiration_ttl,
                &acl.token_max_expiration_ttl,
                "acl.token_max_expiration_ttl",
            )
            .map_err(|(key, message)| key_error(&key, message))?;
            set(&mut self.acl.replication_token, &acl.replication_token);
        }
        if let Some(tls) = &file.tls {
            self.tls
                .apply(tls)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        if let Some(limits) = &file.limits {
            self.limits
                .apply(limits)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        if let Some(enabled) = file
            .plugin
            .as_ref()
            .and_then(|plugins| plugins.get("raw_exec"))
            .and_then(|raw_exec| raw_exec.get("config"))
            .and_then(|config| config.get("enabled"))
            .and_then(Value::as_bool)
        {
            self.client.raw_exec_enabled = enabled;
        }
        let raw = serde_json::to_value(FileKeys::from(file)).unwrap_or(Value::Null);
        self.keys_without_effect = file::ACCEPTED_WITHOUT_EFFECT
            .iter()
            .filter(|key| raw.get(**key).is_some_and(|value| !value.is_null()))
            .map(|key| key.to_string())
            .collect();
        Ok(())
    }

    fn apply_server_file(&mut self, file: &file::ServerFile) -> Result<(), (String, String)> {
        let server = &mut self.server;
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

    fn apply_client_file(&mut self, file: &file::ClientFile) -> Result<(), (String, String)> {
        let client = &mut self.client;
        set(&mut client.enabled, &file.enabled);
        set(&mut client.servers, &file.servers);
        if let Some(join) = &file.server_join {
            if let Some(servers) = &join.retry_join {
                client.servers.extend(servers.iter().cloned());
            }
        }
        if let Some(dir) = &file.state_dir {
            client.state_dir = Some(PathBuf::from(dir));
        }
        if let Some(dir) = &file.alloc_dir {
            client.alloc_dir = Some(PathBuf::from(dir));
        }
        set(&mut client.node_class, &file.node_class);
        set(&mut client.node_pool, &file.node_pool);
        if let Some(meta) = &file.meta {
            client
                .meta
                .extend(meta.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(options) = &file.options {
            client
                .options
                .extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(enable) = options.get("driver.raw_exec.enable") {
                client.raw_exec_enabled = matches!(enable.as_str(), "1" | "true" | "True");
            }
        }
        if let Some(reserved) = &file.reserved {
            set(&mut client.reserved.cpu, &reserved.cpu);
            set(&mut client.reserved.memory_mb, &reserved.memory);
            set(&mut client.reserved.disk_mb, &reserved.disk);
            set(
                &mut client.reserved.reserved_ports,
                &reserved.reserved_ports,
            );
            set(&mut client.reserved.cores, &reserved.cores);
        }
        if let Some(volumes) = &file.host_volume {
            for (name, volume) in volumes {
                if volume.path.is_empty() {
                    return Err((
                        format!("client.host_volume.{name}.path"),
                        "a host volume needs a path".to_string(),
                    ));
                }
                client.host_volumes.insert(
                    name.clone(),
                    HostVolume {
                        path: volume.path.clone(),
                        read_only: volume.read_only.unwrap_or(false),
                    },
                );
            }
        }
        set(&mut client.network_interface, &file.network_interface);
        set(&mut client.network_speed, &file.network_speed);
        set(&mut client.cpu_total_compute, &file.cpu_total_compute);
        set(&mut client.memory_total_mb, &file.memory_total_mb);
        set(&mut client.disk_total_mb, &file.disk_total_mb);
        set(&mut client.disk_free_mb, &file.disk_free_mb);
        set_duration(
            &mut client.max_kill_timeout,
            &file.max_kill_timeout,
            "client.max_kill_timeout",
        )?;
        set_duration(
            &mut client.gc_interval,
            &file.gc_interval,
            "client.gc_interval",
        )?;
        set(&mut client.no_host_uuid, &file.no_host_uuid);
        Ok(())
    }

    fn apply_flags(&mut self, flags: &[flags::FlagValue]) -> Result<(), ConfigError> {
        let invalid = |name: &str, value: &str| {
            ConfigError::Flag(format!(
                "invalid value \"{value}\" for flag -{name}: parse error"
            ))
        };
        for flag in flags {
            let value = flag.value.as_str();
            let as_bool = || parse_go_bool(value).unwrap_or(false);
            match flag.name.as_str() {
                "dev" | "config" => {}
                "server" => self.server.enabled = as_bool(),
                "client" => self.client.enabled = as_bool(),
                "acl-enabled" => self.acl.enabled = as_bool(),
                "bootstrap-expect" => {
                    self.server.bootstrap_expect =
                        value.parse().map_err(|_| invalid(&flag.name, value))?
                }
                "data-dir" => self.data_dir = Some(PathBuf::from(value)),
                "bind" => {
                    self.bind_addr = parse_ip(value).map_err(|_| invalid(&flag.name, value))?;
                    self.addresses = Addresses {
                        http: self.bind_addr,
                        rpc: self.bind_addr,
                        serf: self.bind_addr,
                    };
                }
                "region" => self.region = value.to_string(),
                "dc" => self.datacenter = value.to_string(),
                "node" => self.node_name = value.to_string(),
                "log-level" => self.log_level = value.to_string(),
                "servers" => {
                    self.client.servers = value
                        .split(',')
                        .map(str::trim)
                        .filter(|server| !server.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "join" => self.server.start_join.push(value.to_string()),
                "retry-join" => self.server.retry_join.push(value.to_string()),
                "retry-max" => {
                    self.server.retry_max = value.parse().map_err(|_| invalid(&flag.name, value))?
                }
                "retry-interval" => {
                    self.server.retry_interval =
                        caravan_api_types::duration::parse_go_duration(value)
                            .map_err(|_| invalid(&flag.name, value))?
                }
                "node-class" => self.client.node_class = value.to_string(),
                "node-pool" => self.client.node_pool = value.to_string(),
                "meta" => {
                    let (key, meta_value) = value.split_once('=').ok_or_else(|| {
                        ConfigError::Flag(format!(
                            "invalid value \"{value}\" for flag -meta: expected key=value"
                        ))
                    })?;
                    self.client
                        .meta
                        .insert(key.to_string(), meta_value.to_string());
                }
                "network-interface" => self.client.network_interface = value.to_string(),
                "state-dir" => self.client.state_dir = Some(PathBuf::from(value)),
                "alloc-dir" => self.client.alloc_dir = Some(PathBuf::from(value)),
                "raft-protocol" => {
                    self.server.raft_protocol =
                        value.parse().map_err(|_| invalid(&flag.name, value))?
                }
                "encrypt" => self.server.encrypt = Some(value.to_string()),
                other => {
                    return Err(ConfigError::Flag(format!(
                        "flag provided but not defined: -{other}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Cross-field checks, done once everything is merged.
    fn finish(&mut self) -> Result<(), ConfigError> {
        let level = self.log_level.to_ascii_uppercase();
        if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"].contains(&level.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "invalid log level \"{}\": expected one of TRACE, DEBUG, INFO, WARN, ERROR, OFF",
                self.log_level
            )));
        }
        self.log_level = level;
        if !self.server.enabled && !self.client.enabled {
            return Err(ConfigError::Invalid(
                "must specify either server, client or dev mode for the agent".to_string(),
            ));
        }
        if self.data_dir.is_none() && !self.dev_mode {
            return Err(ConfigError::Invalid(
                "must specify a data directory (-data-dir or data_dir)".to_string(),
            ));
        }
        if self.node_name.is_empty() {
            return Err(ConfigError::Invalid(
                "node name must not be empty".to_string(),
            ));
        }
        if self.region.is_empty() || self.datacenter.is_empty() {
            return Err(ConfigError::Invalid(
                "region and datacenter must not be empty".to_string(),
            ));
        }
        if let Some(key) = &self.server.encrypt {
            if let Err(message) = decode_gossip_key(key) {
                return Err(ConfigError::Invalid(format!(
                    "invalid gossip encryption key (encrypt): {message}"
                )));
            }
        }
        if self.node_name.contains(' ') {
            return Err(ConfigError::Invalid(format!(
                "node name \"{}\" must not contain spaces",
                self.node_name
            )));
        }
        Ok(())
    }

    /// The address other agents should use for `kind`, given the address the
    /// listener actually bound (which resolves port 0 and 0.0.0.0).
    pub fn advertised(&self, configured: &Option<String>, bound: SocketAddr) -> String {
        if let Some(address) = configured {
            if address.parse::<SocketAddr>().is_ok() {
                return address.clone();
            }
            return format!("{address}:{}", bound.port());
        }
        let ip = if bound.ip().is_unspecified() {
            first_private_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        } else {
            bound.ip()
        };
        SocketAddr::new(ip, bound.port()).to_string()
    }
}

/// Only the top-level keys of a file, to see which were set.
#[derive(serde::Serialize)]
struct FileKeys {
    telemetry: Option<Value>,
    consul: Option<Value>,
    vault: Option<Value>,
    ui: Option<Value>,
    plugin: Option<Value>,
    enable_syslog: Option<bool>,
    syslog_facility: Option<String>,
    disable_update_check: Option<bool>,
    enable_debug: Option<bool>,
    plugin_dir: Option<String>,
    log_file: Option<String>,
    log_json: Option<bool>,
}

impl From<&FileConfig> for FileKeys {
    fn from(file: &FileConfig) -> Self {
        Self {
            telemetry: file.telemetry.clone(),
            consul: file.consul.clone(),
            vault: file.vault.clone(),
            ui: file.ui.clone(),
            plugin: file.plugin.clone(),
            enable_syslog: file.enable_syslog,
            syslog_facility: file.syslog_facility.clone(),
            disable_update_check: file.disable_update_check,
            enable_debug: file.enable_debug,
            plugin_dir: file.plugin_dir.clone(),
            log_file: file.log_file.clone(),
            log_json: file.log_json,
        }
    }
}

fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *slot = value.clone();
    }
}

fn set_opt<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        *slot = value.clone();
    }
}

fn set_nanos(slot: &mut i64, value: &Option<ConfigDuration>) {
    if let Some(ConfigDuration(nanos)) = value {
        *slot = *nanos;
    }
}

pub(crate) fn set_duration(
    slot: &mut Duration,
    value: &Option<ConfigDuration>,
    key: &str,
) -> Result<(), (String, String)> {
    if let Some(ConfigDuration(nanos)) = value {
        let nanos = u64::try_from(*nanos)
            .map_err(|_| (key.to_string(), "must not be negative".to_string()))?;
        *slot = Duration::from_nanos(nanos);
    }
    Ok(())
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests;
