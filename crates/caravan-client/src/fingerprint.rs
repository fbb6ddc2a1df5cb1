//! Fingerprinting: what this machine is and offers, with Nomad's attribute
//! names, turned into the `Node` the client registers.

use std::collections::BTreeMap;
use std::path::Path;

use caravan_api_types::node::{
    HostVolumeInfo, LegacyResources, NetworkResource, Node, NodeCpuResources, NodeDiskResources,
    NodeMemoryResources, NodeNetworkAddress, NodeNetworkResource, NodeReservedCpuResources,
    NodeReservedNetworkResources, NodeReservedResources, NodeResources,
};

use crate::drivers::DriverState;
use crate::ClientOptions;

/// Facts read from the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub cpu_model: String,
    pub cpu_mhz: u64,
    pub cpu_cores: u64,
    pub memory_bytes: u64,
    pub kernel_version: String,
    pub os_name: String,
    pub os_version: String,
    pub hostname: String,
    pub storage_volume: String,
    pub storage_total: u64,
    pub storage_free: u64,
}

/// Go's names for the architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn os_release() -> (String, String) {
    let text = read("/etc/os-release");
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(|value| value.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_ID"))
}

/// The mount holding `path`: its device name.
fn volume_of(path: &Path) -> String {
    let mounts = read("/proc/mounts");
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(point)) = (fields.next(), fields.next()) else {
            continue;
        };
        if path.starts_with(point) && best.as_ref().is_none_or(|(len, _)| point.len() > *len) {
            best = Some((point.len(), device.to_string()));
        }
    }
    best.map(|(_, device)| device).unwrap_or_default()
}

/// Reads the machine's facts; `data_path` is where allocations would live.
pub fn host_facts(data_path: &Path) -> HostFacts {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_field = |key: &str| {
        cpuinfo
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default()
    };
    let meminfo = read("/proc/meminfo");
    let memory_kib: u64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let (os_name, os_version) = os_release();
    let (total, free) = match nix::sys::statvfs::statvfs(data_path) {
        Ok(stats) => {
            let fragment = stats.fragment_size();
            (
                stats.blocks() * fragment,
                stats.blocks_available() * fragment,
            )
        }
        Err(_) => (0, 0),
    };
    HostFacts {
        cpu_model: cpu_field("model name"),
        cpu_mhz: cpu_field("cpu MHz")
            .parse::<f64>()
            .map_or(0, |mhz| mhz.round() as u64),
        cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_bytes: memory_kib * 1024,
        kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os_name,
        os_version,
        hostname: nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_default(),
        storage_volume: volume_of(data_path),
        storage_total: total,
        storage_free: free,
    }
}

/// The name of the interface that holds `ip` (`lo` for 127.0.0.1).
pub fn interface_of(ip: &str) -> String {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return String::new();
    };
    for interface in interfaces {
        let address = interface
            .address
            .as_ref()
            .and_then(|address| address.as_sockaddr_in().map(|v4| v4.ip().to_string()));
        if address.as_deref() == Some(ip) {
            return interface.interface_name;
        }
    }
    String::new()
}

/// A stable 64-bit FNV-1a hash.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `v1:<hash>` over the fields that decide where work may be placed, with
/// `unique.` attributes and meta left out so identical machines share a
/// class (as Nomad's computed class does).
pub fn computed_class(node: &Node) -> String {
    let mut canonical = format!(
        "dc={}\nclass={}\npool={}\n",
        node.datacenter, node.node_class, node.node_pool
    );
    for (key, value) in &node.attributes {
        if !key.starts_with("unique.") {
            canonical.push_str(&format!("attr:{key}={value}\n"));
        }
    }
    for (key, value) in &node.meta {
        if !key.starts_with("unique.") {
            canonical.push_str(&format!("meta:{key}={value}\n"));
        }
    }
    for (name, driver) in &node.drivers {
        canonical.push_str(&format!(
            "driver:{name}={}/{}\n",
            driver.detected, driver.healthy
        ));
    }
    if let Some(resources) = &node.node_resources {
        canonical.push_str(&format!(
            "res:{}/{}/{}\n",
            resources.cpu.cpu_shares, resources.memory.memory_mb, resources.disk.disk_mb
        ));
    }
    format!("v1:{}", fnv1a(&canonical))
}

/// Builds the node to register from the machine's facts, the drivers'
/// states and the client's configuration.
pub fn build_node(
    options: &ClientOptions,
    facts: &HostFacts,
    drivers: &BTreeMap<String, caravan_api_types::node::DriverInfo>,
    driver_states: &BTreeMap<String, DriverState>,
) -> Node {
    let total_compute = if options.cpu_total_compute > 0 {
        options.cpu_total_compute
    } else {
        facts.cpu_mhz * facts.cpu_cores
    };
    let memory_mb = if options.memory_total_mb > 0 {
        options.memory_total_mb
    } else {
        facts.memory_bytes / (1024 * 1024)
    };
    let disk_mb = if options.disk_free_mb > 0 {
        options.disk_free_mb
    } else {
        facts.storage_free / (1024 * 1024)
    };
    let advertise_ip = options
        .http_advertise
        .rsplit_once(':')
        .map(|(host, _)| host.trim_matches(|c| c == '[' || c == ']').to_string())
        .unwrap_or_default();

    let mut attributes = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        attributes.insert(key.to_string(), value);
    };
    set("cpu.arch", go_arch().to_string());
    set("cpu.numcores", facts.cpu_cores.to_string());
    set("cpu.frequency", facts.cpu_mhz.to_string());
    set("cpu.modelname", facts.cpu_model.clone());
    set("cpu.totalcompute", total_compute.to_string());
    set("memory.totalbytes", facts.memory_bytes.to_string());
    set("kernel.name", std::env::consts::OS.to_string());
    set("kernel.arch", std::env::consts::ARCH.to_string());
    set("kernel.version", facts.kernel_version.clone());
    set("os.name", facts.os_name.clone());
    set("os.version", facts.os_version.clone());
    set("unique.hostname", facts.hostname.clone());
    set("unique.network.ip-address", advertise_ip.clone());
    set("unique.storage.volume", facts.storage_volume.clone());
    set("unique.storage.bytestotal", facts.storage_total.to_string());
    set("unique.storage.bytesfree", facts.storage_free.to_string());
    set("nomad.version", options.version.clone());
    set("nomad.revision", options.revision.clone());
    set("nomad.advertise.address", options.http_advertise.clone());
    if let Some(version) = caravan_drivers::exec::cgroup_version() {
        set("unique.cgroup.mountpoint", "/sys/fs/cgroup".to_string());
        set("unique.cgroup.version", version.to_string());
    }
    for (name, state) in driver_states {
        if state.detected {
            set(&format!("driver.{name}"), "1".to_string());
            for (key, value) in &state.attributes {
                if key != &format!("driver.{name}") {
                    set(key, value.clone());
                }
            }
        }
    }

    let device = if options.network_interface.is_empty() {
        interface_of(&advertise_ip)
    } else {
        options.network_interface.clone()
    };
    let network = NetworkResource {
        mode: "host".to_string(),
        device: device.clone(),
        cidr: format!("{advertise_ip}/32"),
        ip: advertise_ip.clone(),
        mbits: if options.network_speed > 0 {
            options.network_speed
        } else {
            1000
        },
        dynamic_ports: None,
        reserved_ports: None,
    };
    let node_network = NodeNetworkResource {
        mode: "host".to_string(),
        device,
        mac_address: String::new(),
        speed: network.mbits,
        addresses: vec![NodeNetworkAddress {
            family: "ipv4".to_string(),
            alias: "default".to_string(),
            address: advertise_ip,
            reserved_ports: String::new(),
            gateway: String::new(),
        }],
    };
    let reserved = &options.reserved;
    let mut node = Node {
        id: options.identity.node_id.clone(),
        secret_id: options.identity.secret_id.clone(),
        datacenter: options.datacenter.clone(),
        name: options.node_name.clone(),
        http_addr: options.http_advertise.clone(),
        tls_enabled: false,
        attributes,
        node_resources: Some(NodeResources {
            cpu: NodeCpuResources {
                cpu_shares: total_compute,
                total_cpu_cores: facts.cpu_cores,
                reservable_cpu_cores: (0..facts.cpu_cores).collect(),
            },
            memory: NodeMemoryResources { memory_mb },
            disk: NodeDiskResources { disk_mb },
            networks: Some(vec![network.clone()]),
            node_networks: Some(vec![node_network]),
            devices: None,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
        }),
        reserved_resources: Some(NodeReservedResources {
            cpu: NodeReservedCpuResources {
                cpu_shares: reserved.cpu,
                reserved_cpu_cores: Vec::new(),
            },
            memory: NodeMemoryResources {
                memory_mb: reserved.memory_mb,
            },
            disk: NodeDiskResources {
                disk_mb: reserved.disk_mb,
            },
            networks: NodeReservedNetworkResources {
                reserved_host_ports: reserved.reserved_ports.clone(),
            },
        }),
        resources: Some(LegacyResources {
            cpu: total_compute,
            memory_mb,
            disk_mb,
            networks: Some(vec![network]),
            ..LegacyResources::default()
        }),
        reserved: Some(LegacyResources {
            cpu: reserved.cpu,
            memory_mb: reserved.memory_mb,
            disk_mb: reserved.disk_mb,
            ..LegacyResources::default()
        }),
        links: BTreeMap::new(),
        meta: options.meta.clone(),
        node_class: options.node_class.clone(),
        node_pool: options.node_pool.clone(),
        drivers: drivers.clone(),
        host_volumes: options
            .host_volumes
            .iter()
            .map(|(name, (path, read_only))| {
                (
                    name.clone(),
                    HostVolumeInfo {
                        name: name.clone(),
                        path: path.clone(),
                        read_only: *read_only,
                        id: String::new(),
                    },
                )
            })
            .collect(),
        ..Node::default()
    };
    node.computed_class = computed_class(&node);
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let facts = host_facts(Path::new("/"));
        assert!(facts.cpu_cores >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(!facts.kernel_version.is_empty());
        assert!(facts.storage_total >= facts.storage_free);
    }

    #[test]
    fn computed_class_ignores_unique_attributes() {
        let mut a = Node {
            datacenter: "dc1".into(),
            ..Node::default()
        };
        a.attributes.insert("kernel.name".into(), "linux".into());
        a.attributes.insert("unique.hostname".into(), "one".into());
        let mut b = a.clone();
        b.attributes.insert("unique.hostname".into(), "two".into());
        assert_eq!(computed_class(&a), computed_class(&b));
        assert!(computed_class(&a).starts_with("v1:"));
        b.node_class = "gpu".into();
        assert_ne!(computed_class(&a), computed_class(&b));
    }
}
