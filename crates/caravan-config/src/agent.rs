//! The agent's whole configuration: the blocks together, the top-level
//! keys and flags, the order they apply in, and the checks across blocks.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use caravan_api_types::operator::AutopilotConfiguration;
use serde_json::Value;

use crate::acl::AclConfig;
use crate::addresses::{
    Addresses, AdvertiseAddrs, Ports, DEFAULT_HTTP_PORT, DEFAULT_RPC_PORT, DEFAULT_SERF_PORT,
};
use crate::client::ClientConfig;
use crate::error::ConfigError;
use crate::file::{self, FileConfig};
use crate::flags::{self, parse_go_bool, parse_go_flags, FlagKind};
use crate::merge::{parse_ip, set, set_nanos, set_opt};
use crate::network::first_private_ip;
use crate::server::{decode_gossip_key, ServerConfig};
use crate::{limits, tls};

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
    /// What Caravan honours of Nomad's `telemetry` block.
    pub telemetry: crate::telemetry::Telemetry,
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
            server: ServerConfig::defaults(dev_mode),
            client: ClientConfig::defaults(dev_mode),
            autopilot: AutopilotConfiguration::initial(),
            acl: AclConfig::defaults(),
            http_api_response_headers: BTreeMap::new(),
            leave_on_interrupt: false,
            leave_on_terminate: false,
            limits: limits::Limits::default(),
            tls: tls::TlsConfig::default(),
            telemetry: crate::telemetry::Telemetry::default(),
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
            self.server
                .apply_file(server)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        if let Some(client) = &file.client {
            self.client
                .apply_file(client)
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
            self.acl
                .apply_file(acl)
                .map_err(|(key, message)| key_error(&key, message))?;
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
        if let Some(telemetry) = &file.telemetry {
            self.telemetry
                .apply(telemetry)
                .map_err(|(key, message)| key_error(&key, message))?;
        }
        let raw = serde_json::to_value(FileKeys::from(file)).unwrap_or(Value::Null);
        self.keys_without_effect = file::ACCEPTED_WITHOUT_EFFECT
            .iter()
            .filter(|key| raw.get(**key).is_some_and(|value| !value.is_null()))
            // A telemetry block of the keys Caravan honours has its effect.
            .filter(|key| {
                **key != "telemetry"
                    || file
                        .telemetry
                        .as_ref()
                        .is_some_and(crate::telemetry::Telemetry::has_unhonoured_keys)
            })
            // A plugin block that only enables raw_exec has its effect.
            .filter(|key| {
                **key != "plugin"
                    || file
                        .plugin
                        .as_ref()
                        .and_then(Value::as_object)
                        .is_some_and(|plugins| plugins.keys().any(|name| name != "raw_exec"))
            })
            .map(|key| key.to_string())
            .collect();
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

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
