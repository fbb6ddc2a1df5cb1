//! The `client` block: servers to join, node identity and resources.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::file::ClientFile;
use crate::merge::{set, set_duration};

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
    /// Terminal allocations are collected once the client holds more
    /// allocations than this, oldest first.
    pub gc_max_allocs: u64,
    /// Terminal allocations are collected while the allocation
    /// directory's file system is fuller than these percentages.
    pub gc_disk_usage_threshold: f64,
    pub gc_inode_usage_threshold: f64,
    pub gc_parallel_destroys: u64,
    pub no_host_uuid: bool,
    /// raw_exec runs tasks without isolation, so it is off unless enabled
    /// (`plugin "raw_exec" { config { enabled = true } }`, the client option
    /// `driver.raw_exec.enable`, or `-dev`).
    pub raw_exec_enabled: bool,
}

impl ClientConfig {
    /// Nomad's defaults, or those of `agent -dev` (which runs a client
    /// with raw_exec).
    pub(crate) fn defaults(dev_mode: bool) -> Self {
        Self {
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
            gc_max_allocs: 50,
            gc_disk_usage_threshold: 80.0,
            gc_inode_usage_threshold: 70.0,
            gc_parallel_destroys: 2,
            no_host_uuid: true,
            raw_exec_enabled: dev_mode,
        }
    }

    /// Lays the `client` block of a file over this configuration.
    pub(crate) fn apply_file(&mut self, file: &ClientFile) -> Result<(), (String, String)> {
        let client = self;
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
        set(&mut client.gc_max_allocs, &file.gc_max_allocs);
        set(&mut client.gc_parallel_destroys, &file.gc_parallel_destroys);
        for (value, wanted, key) in [
            (
                &mut client.gc_disk_usage_threshold,
                file.gc_disk_usage_threshold,
                "client.gc_disk_usage_threshold",
            ),
            (
                &mut client.gc_inode_usage_threshold,
                file.gc_inode_usage_threshold,
                "client.gc_inode_usage_threshold",
            ),
        ] {
            if let Some(wanted) = wanted {
                if !(0.0..=100.0).contains(&wanted) {
                    return Err((key.to_string(), format!("{wanted} is not a percentage")));
                }
                *value = wanted;
            }
        }
        set(&mut client.no_host_uuid, &file.no_host_uuid);
        Ok(())
    }
}
