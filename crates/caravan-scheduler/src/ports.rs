//! Host ports: which are taken on a node, and picking new ones.
//!
//! One picker serves the scheduler and the plan applier (through
//! [`crate::fit`]), so a node the scheduler thinks has a free port is never
//! rejected by the applier for a port (Nomad's #9506/#14850 loop).
//! Used ports are kept per host IP, as Nomad's `NetworkIndex` does.

use std::collections::BTreeMap;

use caravan_api_types::alloc::{AllocatedPortMapping, AllocatedResources};
use caravan_api_types::job::{NetworkResource, Port};
use caravan_api_types::node::Node;

use crate::fit::NetworkError;
use crate::rng::SplitMix64;

pub const DEFAULT_MIN_DYNAMIC_PORT: u16 = 20000;
pub const DEFAULT_MAX_DYNAMIC_PORT: u16 = 32000;
/// Random picks before the precise scan (Nomad's `maxRandPortAttempts`).
const RANDOM_TRIES: usize = 20;
pub const DEFAULT_HOST_NETWORK: &str = "default";

/// 65536 bits: one per port.
#[derive(Clone)]
pub struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used: u32 = self.0.iter().map(|word| word.count_ones()).sum();
        write!(f, "PortSet({used} used)")
    }
}

impl PortSet {
    pub fn contains(&self, port: u16) -> bool {
        self.0[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Marks a port; false if it was already marked.
    pub fn insert(&mut self, port: u16) -> bool {
        let word = &mut self.0[usize::from(port) / 64];
        let bit = 1u64 << (port % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    pub fn remove(&mut self, port: u16) {
        self.0[usize::from(port) / 64] &= !(1u64 << (port % 64));
    }
}

/// Parses Nomad's port list syntax, `"22,80,8000-8100"`. Entries that do not
/// parse are skipped: a node's bad reservation must not make it unusable.
pub fn parse_port_list(spec: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((low, high)) => {
                if let (Ok(low), Ok(high)) = (low.trim().parse::<u16>(), high.trim().parse::<u16>())
                {
                    ports.extend(low..=high);
                }
            }
            None => ports.extend(part.parse::<u16>().ok()),
        }
    }
    ports
}

/// The address a port on `host_network` binds to on this node: the node
/// network address with that alias; for `default`, the first host-mode
/// address, else the fingerprinted `unique.network.ip-address`.
pub fn host_ip(node: &Node, host_network: &str) -> Option<String> {
    let wanted = if host_network.is_empty() {
        DEFAULT_HOST_NETWORK
    } else {
        host_network
    };
    let networks = node
        .node_resources
        .as_ref()
        .and_then(|resources| resources.node_networks.as_ref());
    for network in networks.into_iter().flatten() {
        for address in &network.addresses {
            if address.alias == wanted {
                return Some(address.address.clone());
            }
        }
    }
    if wanted != DEFAULT_HOST_NETWORK {
        return None;
    }
    let first_host = networks
        .into_iter()
        .flatten()
        .filter(|network| network.mode == "host" || network.mode.is_empty())
        .flat_map(|network| network.addresses.iter())
        .next()
        .map(|address| address.address.clone());
    Some(first_host.unwrap_or_else(|| {
        node.attributes
            .get("unique.network.ip-address")
            .cloned()
            .unwrap_or_default()
    }))
}

/// The ports taken on one node, per host IP.
#[derive(Debug, Clone)]
pub struct NetworkIndex {
    min_dynamic: u16,
    max_dynamic: u16,
    /// Ports the node reserves on every address.
    reserved: Vec<u16>,
    used: BTreeMap<String, PortSet>,
}

/// The ports one allocation holds, deduplicated (an allocation lists its
/// group ports both in `Shared.Ports` and in `Shared.Networks`).
pub fn alloc_ports(resources: &AllocatedResources) -> Vec<(String, u16, bool)> {
    let mut ports: Vec<(String, u16, bool)> = Vec::new();
    let mut push = |ip: &str, value: i32, ignore: bool| {
        if let Ok(port) = u16::try_from(value) {
            if port != 0 && !ports.iter().any(|(i, p, _)| i == ip && *p == port) {
                ports.push((ip.to_string(), port, ignore));
            }
        }
    };
    match resources.shared.ports.as_deref() {
        Some(mapped) if !mapped.is_empty() => {
            for port in mapped {
                push(&port.host_ip, port.value, port.ignore_collision);
            }
        }
        _ => {
            for network in resources.shared.networks.iter().flatten() {
                for port in network.ports() {
                    push(&network.ip, port.value, port.ignore_collision);
                }
            }
        }
    }
    for task in resources.tasks.values() {
        for network in task.networks.iter().flatten() {
            for port in network.ports() {
                push(&network.ip, port.value, port.ignore_collision);
            }
        }
    }
    ports
}

impl NetworkIndex {
    /// The node's own reservations, before any allocation.
    pub fn new(node: &Node) -> Self {
        let (mut min, mut max) = node
            .node_resources
            .as_ref()
            .map_or((0, 0), |r| (r.min_dynamic_port, r.max_dynamic_port));
        if min == 0 {
            min = DEFAULT_MIN_DYNAMIC_PORT;
        }
        if max == 0 {
            max = DEFAULT_MAX_DYNAMIC_PORT;
        }
        let reserved = node
            .reserved_resources
            .as_ref()
            .map(|r| parse_port_list(&r.networks.reserved_host_ports))
            .unwrap_or_default();
        let mut index = Self {
            min_dynamic: min.min(max),
            max_dynamic: max.max(min),
            reserved,
            used: BTreeMap::new(),
        };
        let networks = node
            .node_resources
            .as_ref()
            .and_then(|r| r.node_networks.as_ref());
        for address in networks.into_iter().flatten().flat_map(|n| &n.addresses) {
            let set = index.set_for(&address.address);
            for port in parse_port_list(&address.reserved_ports) {
                set.insert(port);
            }
        }
        index
    }

    fn set_for(&mut self, ip: &str) -> &mut PortSet {
        let reserved = &self.reserved;
        self.used.entry(ip.to_string()).or_insert_with(|| {
            let mut set = PortSet::default();
            for port in reserved {
                set.insert(*port);
            }
            set
        })
    }

    pub fn is_used(&self, ip: &str, port: u16) -> bool {
        match self.used.get(ip) {
            Some(set) => set.contains(port),
            None => self.reserved.contains(&port),
        }
    }

    /// Marks an allocation's ports. A port already taken is a collision
    /// (unless either side set `ignore_collision`); the ports are still
    /// marked, so the caller decides what a collision means.
    pub fn add_allocation(&mut self, resources: &AllocatedResources) -> Result<(), NetworkError> {
        let mut collision = None;
        for (ip, port, ignore) in alloc_ports(resources) {
            let fresh = self.set_for(&ip).insert(port);
            if !fresh && !ignore && collision.is_none() {
                collision = Some(NetworkError::PortCollision);
            }
        }
        collision.map_or(Ok(()), Err)
    }

    /// Whether any of an allocation's ports is already taken.
    pub fn collides(&self, ports: &[(String, u16, bool)]) -> bool {
        ports
            .iter()
            .any(|(ip, port, ignore)| !ignore && self.is_used(ip, *port))
    }

    /// Unmarks an allocation's ports (a stop in the same plan).
    pub fn remove_allocation(&mut self, resources: &AllocatedResources) {
        for (ip, port, _) in alloc_ports(resources) {
            if !self.reserved.contains(&port) {
                self.set_for(&ip).remove(port);
            }
        }
    }

    /// Gives ports for a group's networks on this node: its static ports as
    /// asked, its dynamic ones picked from the node's dynamic range, none
    /// colliding with each other or with what is taken. Picks depend only
    /// on `rng`, so a seed gives the same ports every time.
    pub fn assign_ports(
        &self,
        node: &Node,
        networks: &[NetworkResource],
        rng: &mut SplitMix64,
    ) -> Result<Vec<AllocatedPortMapping>, NetworkError> {
        let mut offer: Vec<AllocatedPortMapping> = Vec::new();
        let resolve = |port: &Port| {
            let network = if port.host_network.is_empty() {
                DEFAULT_HOST_NETWORK
            } else {
                &port.host_network
            };
            host_ip(node, network).ok_or_else(|| NetworkError::MissingHostNetwork {
                network: network.to_string(),
                label: port.label.clone(),
            })
        };
        let taken = |offer: &[AllocatedPortMapping], ip: &str, port: u16| {
            offer
                .iter()
                .any(|o| o.host_ip == ip && o.value == i32::from(port))
        };
        for port in networks
            .iter()
            .flat_map(|n| n.reserved_ports.iter().flatten())
        {
            let value = u16::try_from(port.value)
                .map_err(|_| NetworkError::OutOfRange(i64::from(port.value)))?;
            let ip = resolve(port)?;
            if !port.ignore_collision && (self.is_used(&ip, value) || taken(&offer, &ip, value)) {
                return Err(NetworkError::ReservedPortCollision {
                    label: port.label.clone(),
                    port: value,
                });
            }
            offer.push(mapping(port, i32::from(value), ip));
        }
        for port in networks
            .iter()
            .flat_map(|n| n.dynamic_ports.iter().flatten())
        {
            let ip = resolve(port)?;
            let free =
                |candidate: u16| !self.is_used(&ip, candidate) && !taken(&offer, &ip, candidate);
            let span = u64::from(self.max_dynamic - self.min_dynamic) + 1;
            let mut picked = None;
            for _ in 0..RANDOM_TRIES {
                let candidate = self.min_dynamic + rng.below(span) as u16;
                if free(candidate) {
                    picked = Some(candidate);
                    break;
                }
            }
            if picked.is_none() {
                // The precise fallback: scan the whole range from a random
                // start, so a nearly full range still finds its last port.
                let start = rng.below(span);
                picked = (0..span)
                    .map(|step| self.min_dynamic + ((start + step) % span) as u16)
                    .find(|candidate| free(*candidate));
            }
            let value = picked.ok_or(NetworkError::DynamicPortSelectionFailed)?;
            offer.push(mapping(port, i32::from(value), ip));
        }
        Ok(offer)
    }
}

fn mapping(port: &Port, value: i32, host_ip: String) -> AllocatedPortMapping {
    AllocatedPortMapping {
        label: port.label.clone(),
        value,
        // `to = -1` maps to the same number as the host port.
        to: if port.to == -1 { value } else { port.to },
        host_ip,
        ignore_collision: port.ignore_collision,
    }
}
