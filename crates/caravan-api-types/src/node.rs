//! Wire types of the `/v1/node/` and `/v1/nodes` API page.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::optional_rfc3339;

pub const NODE_STATUS_INITIALIZING: &str = "initializing";
pub const NODE_STATUS_READY: &str = "ready";
pub const NODE_STATUS_DOWN: &str = "down";
pub const NODE_STATUS_DISCONNECTED: &str = "disconnected";
pub const ELIGIBLE: &str = "eligible";
pub const INELIGIBLE: &str = "ineligible";
/// A node keeps at most this many events (Nomad's `MaxRetainedNodeEvents`).
pub const MAX_NODE_EVENTS: usize = 10;

pub const SUBSYSTEM_CLUSTER: &str = "Cluster";
pub const SUBSYSTEM_DRAIN: &str = "Drain";
pub const SUBSYSTEM_DRIVER: &str = "Driver";
pub const SUBSYSTEM_HEARTBEAT: &str = "Heartbeat";

/// One entry of a node's event list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeEvent {
    pub message: String,
    pub subsystem: String,
    pub details: Option<BTreeMap<String, String>>,
    #[serde(with = "optional_rfc3339")]
    pub timestamp: Option<DateTime<Utc>>,
    pub create_index: u64,
}

impl NodeEvent {
    pub fn new(subsystem: &str, message: &str) -> Self {
        Self {
            message: message.to_string(),
            subsystem: subsystem.to_string(),
            details: None,
            timestamp: Some(Utc::now()),
            create_index: 0,
        }
    }

    pub fn with_detail(mut self, key: &str, value: &str) -> Self {
        self.details
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
        self
    }
}

/// A task driver's state on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverInfo {
    pub attributes: Option<BTreeMap<String, String>>,
    pub detected: bool,
    pub healthy: bool,
    pub health_description: String,
    #[serde(with = "optional_rfc3339")]
    pub update_time: Option<DateTime<Utc>>,
}

/// A host volume a node offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostVolumeInfo {
    pub name: String,
    pub path: String,
    pub read_only: bool,
    #[serde(rename = "ID")]
    pub id: String,
}

/// A network of a node (legacy `NetworkResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    pub mode: String,
    pub device: String,
    #[serde(rename = "CIDR")]
    pub cidr: String,
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(rename = "MBits")]
    pub mbits: u64,
    pub dynamic_ports: Option<Vec<serde_json::Value>>,
    pub reserved_ports: Option<Vec<serde_json::Value>>,
}

/// An address of a node network (`NodeNetworkAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeNetworkAddress {
    pub family: String,
    pub alias: String,
    pub address: String,
    pub reserved_ports: String,
    pub gateway: String,
}

/// A node network (`NodeNetworkResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeNetworkResource {
    pub mode: String,
    pub device: String,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    pub speed: u64,
    pub addresses: Vec<NodeNetworkAddress>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeCpuResources {
    pub cpu_shares: u64,
    pub total_cpu_cores: u64,
    pub reservable_cpu_cores: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeMemoryResources {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDiskResources {
    #[serde(rename = "DiskMB")]
    pub disk_mb: u64,
}

/// What a node has to offer (`NodeResources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeResources {
    pub cpu: NodeCpuResources,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    pub networks: Option<Vec<NetworkResource>>,
    pub node_networks: Option<Vec<NodeNetworkResource>>,
    pub devices: Option<Vec<serde_json::Value>>,
    pub min_dynamic_port: u16,
    pub max_dynamic_port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedCpuResources {
    pub cpu_shares: u64,
    pub reserved_cpu_cores: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedNetworkResources {
    pub reserved_host_ports: String,
}

/// What a node keeps back from scheduling (`NodeReservedResources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeReservedResources {
    pub cpu: NodeReservedCpuResources,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    pub networks: NodeReservedNetworkResources,
}

/// The legacy flat resources (`Resources`, `Reserved`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LegacyResources {
    #[serde(rename = "CPU")]
    pub cpu: u64,
    pub cores: u64,
    #[serde(rename = "MemoryMB")]
    pub memory_mb: u64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: u64,
    #[serde(rename = "DiskMB")]
    pub disk_mb: u64,
    #[serde(rename = "IOPS")]
    pub iops: u64,
    pub networks: Option<Vec<NetworkResource>>,
    pub devices: Option<Vec<serde_json::Value>>,
}

/// How to drain (`DrainSpec`); `Deadline` in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainSpec {
    pub deadline: i64,
    pub ignore_system_jobs: bool,
}

/// A drain in progress: the spec plus when it started and must end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DrainStrategy {
    pub deadline: i64,
    pub ignore_system_jobs: bool,
    #[serde(with = "optional_rfc3339")]
    pub force_deadline: Option<DateTime<Utc>>,
    #[serde(with = "optional_rfc3339")]
    pub started_at: Option<DateTime<Utc>>,
}

pub const DRAIN_STATUS_DRAINING: &str = "draining";
pub const DRAIN_STATUS_COMPLETE: &str = "complete";
pub const DRAIN_STATUS_CANCELED: &str = "canceled";

/// The last drain's outcome (`DrainMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LastDrain {
    #[serde(with = "optional_rfc3339")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "optional_rfc3339")]
    pub updated_at: Option<DateTime<Utc>>,
    pub status: String,
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    pub meta: Option<BTreeMap<String, String>>,
}

/// A client node, as `GET /v1/node/:id` returns it. `Debug` shows the
/// secret as `"<redacted>"`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    /// Blanked to `""` in every API answer.
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub datacenter: String,
    pub name: String,
    pub cgroup_parent: String,
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    #[serde(rename = "TLSEnabled")]
    pub tls_enabled: bool,
    pub attributes: BTreeMap<String, String>,
    pub node_resources: Option<NodeResources>,
    pub reserved_resources: Option<NodeReservedResources>,
    pub resources: Option<LegacyResources>,
    pub reserved: Option<LegacyResources>,
    pub links: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub node_class: String,
    pub node_pool: String,
    pub computed_class: String,
    pub drain_strategy: Option<DrainStrategy>,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    /// Unix seconds.
    pub status_updated_at: i64,
    pub events: Vec<NodeEvent>,
    pub drivers: BTreeMap<String, DriverInfo>,
    #[serde(rename = "CSIControllerPlugins")]
    pub csi_controller_plugins: Option<serde_json::Value>,
    #[serde(rename = "CSINodePlugins")]
    pub csi_node_plugins: Option<serde_json::Value>,
    pub host_volumes: BTreeMap<String, HostVolumeInfo>,
    #[serde(rename = "GCVolumesOnNodeGC")]
    pub gc_volumes_on_node_gc: bool,
    pub host_networks: Option<serde_json::Value>,
    pub last_drain: Option<LastDrain>,
    pub node_max_allocs: u64,
    pub last_missed_heartbeat_index: u64,
    pub last_alloc_update_index: u64,
    #[serde(rename = "IdentitySigningKeyID")]
    pub identity_signing_key_id: String,
    pub create_index: u64,
    pub modify_index: u64,
    /// Nomad's synthetic field: whether a drain strategy is set.
    pub drain: bool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so a new one cannot slip past this decision.
        let Node {
            id,
            secret_id,
            datacenter,
            name,
            cgroup_parent,
            http_addr,
            tls_enabled,
            attributes,
            node_resources,
            reserved_resources,
            resources,
            reserved,
            links,
            meta,
            node_class,
            node_pool,
            computed_class,
            drain_strategy,
            scheduling_eligibility,
            status,
            status_description,
            status_updated_at,
            events,
            drivers,
            csi_controller_plugins,
            csi_node_plugins,
            host_volumes,
            gc_volumes_on_node_gc,
            host_networks,
            last_drain,
            node_max_allocs,
            last_missed_heartbeat_index,
            last_alloc_update_index,
            identity_signing_key_id,
            create_index,
            modify_index,
            drain,
        } = self;
        f.debug_struct("Node")
            .field("id", id)
            .field("secret_id", &crate::redacted(secret_id))
            .field("datacenter", datacenter)
            .field("name", name)
            .field("cgroup_parent", cgroup_parent)
            .field("http_addr", http_addr)
            .field("tls_enabled", tls_enabled)
            .field("attributes", attributes)
            .field("node_resources", node_resources)
            .field("reserved_resources", reserved_resources)
            .field("resources", resources)
            .field("reserved", reserved)
            .field("links", links)
            .field("meta", meta)
            .field("node_class", node_class)
            .field("node_pool", node_pool)
            .field("computed_class", computed_class)
            .field("drain_strategy", drain_strategy)
            .field("scheduling_eligibility", scheduling_eligibility)
            .field("status", status)
            .field("status_description", status_description)
            .field("status_updated_at", status_updated_at)
            .field("events", events)
            .field("drivers", drivers)
            .field("csi_controller_plugins", csi_controller_plugins)
            .field("csi_node_plugins", csi_node_plugins)
            .field("host_volumes", host_volumes)
            .field("gc_volumes_on_node_gc", gc_volumes_on_node_gc)
            .field("host_networks", host_networks)
            .field("last_drain", last_drain)
            .field("node_max_allocs", node_max_allocs)
            .field("last_missed_heartbeat_index", last_missed_heartbeat_index)
            .field("last_alloc_update_index", last_alloc_update_index)
            .field("identity_signing_key_id", identity_signing_key_id)
            .field("create_index", create_index)
            .field("modify_index", modify_index)
            .field("drain", drain)
            .finish()
    }
}

impl Node {
    pub fn is_draining(&self) -> bool {
        self.drain_strategy.is_some()
    }

    /// The host part of `HTTPAddr`, as the node list shows it.
    pub fn address(&self) -> String {
        match self.http_addr.rsplit_once(':') {
            Some((host, _)) => host.trim_matches(|c| c == '[' || c == ']').to_string(),
            None => self.http_addr.clone(),
        }
    }

    /// Adds an event, keeping only the newest [`MAX_NODE_EVENTS`].
    pub fn push_event(&mut self, event: NodeEvent) {
        self.events.push(event);
        if self.events.len() > MAX_NODE_EVENTS {
            let excess = self.events.len() - MAX_NODE_EVENTS;
            self.events.drain(..excess);
        }
    }
}

/// An entry of `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeListStub {
    pub address: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    pub datacenter: String,
    pub name: String,
    pub node_class: String,
    pub node_pool: String,
    pub version: String,
    pub drain: bool,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    pub drivers: BTreeMap<String, DriverInfo>,
    pub host_volumes: BTreeMap<String, HostVolumeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<NodeReservedResources>,
    pub last_drain: Option<LastDrain>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl NodeListStub {
    /// The stub of `node`; `resources` and `os` add what those query
    /// parameters ask for.
    pub fn of(node: &Node, resources: bool, os: bool) -> Self {
        Self {
            address: node.address(),
            id: node.id.clone(),
            attributes: os.then(|| {
                node.attributes
                    .get("os.name")
                    .map(|name| BTreeMap::from([("os.name".to_string(), name.clone())]))
                    .unwrap_or_default()
            }),
            datacenter: node.datacenter.clone(),
            name: node.name.clone(),
            node_class: node.node_class.clone(),
            node_pool: node.node_pool.clone(),
            version: node
                .attributes
                .get("nomad.version")
                .cloned()
                .unwrap_or_default(),
            drain: node.is_draining(),
            scheduling_eligibility: node.scheduling_eligibility.clone(),
            status: node.status.clone(),
            status_description: node.status_description.clone(),
            drivers: node.drivers.clone(),
            host_volumes: node.host_volumes.clone(),
            node_resources: resources.then(|| node.node_resources.clone().unwrap_or_default()),
            reserved_resources: resources
                .then(|| node.reserved_resources.clone().unwrap_or_default()),
            last_drain: node.last_drain.clone(),
            create_index: node.create_index,
            modify_index: node.modify_index,
        }
    }
}

/// A [`NodeListStub`] borrowed from its node, for writing large lists
/// without copying every node's maps.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeListStubView<'a> {
    pub address: String,
    #[serde(rename = "ID")]
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<&'a str, &'a str>>,
    pub datacenter: &'a str,
    pub name: &'a str,
    pub node_class: &'a str,
    pub node_pool: &'a str,
    pub version: &'a str,
    pub drain: bool,
    pub scheduling_eligibility: &'a str,
    pub status: &'a str,
    pub status_description: &'a str,
    pub drivers: &'a BTreeMap<String, DriverInfo>,
    pub host_volumes: &'a BTreeMap<String, HostVolumeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<Option<&'a NodeResources>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<Option<&'a NodeReservedResources>>,
    pub last_drain: Option<&'a LastDrain>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> NodeListStubView<'a> {
    /// The stub of `node`; `resources` and `os` add what those query
    /// parameters ask for.
    pub fn of(node: &'a Node, resources: bool, os: bool) -> Self {
        Self {
            address: node.address(),
            id: &node.id,
            attributes: os.then(|| {
                node.attributes
                    .get_key_value("os.name")
                    .map(|(key, value)| BTreeMap::from([(key.as_str(), value.as_str())]))
                    .unwrap_or_default()
            }),
            datacenter: &node.datacenter,
            name: &node.name,
            node_class: &node.node_class,
            node_pool: &node.node_pool,
            version: node
                .attributes
                .get("nomad.version")
                .map_or("", String::as_str),
            drain: node.is_draining(),
            scheduling_eligibility: &node.scheduling_eligibility,
            status: &node.status,
            status_description: &node.status_description,
            drivers: &node.drivers,
            host_volumes: &node.host_volumes,
            node_resources: resources.then_some(node.node_resources.as_ref()),
            reserved_resources: resources.then_some(node.reserved_resources.as_ref()),
            last_drain: node.last_drain.as_ref(),
            create_index: node.create_index,
            modify_index: node.modify_index,
        }
    }
}

/// Body of `POST /v1/node/:id/drain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeUpdateDrainRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub drain_spec: Option<DrainSpec>,
    pub mark_eligible: bool,
    pub meta: Option<BTreeMap<String, String>>,
}

/// Body of `POST /v1/node/:id/eligibility`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeUpdateEligibilityRequest {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub eligibility: String,
    pub node_event: Option<serde_json::Value>,
}

/// Answer of drain and eligibility writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDrainUpdateResponse {
    pub node_modify_index: u64,
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Option<Vec<String>>,
    pub eval_create_index: u64,
    pub index: u64,
}

/// A server as a node update answer lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServerInfo {
    #[serde(rename = "RPCAdvertiseAddr")]
    pub rpc_advertise_addr: String,
    #[serde(rename = "RPCMajorVersion")]
    pub rpc_major_version: i32,
    #[serde(rename = "RPCMinorVersion")]
    pub rpc_minor_version: i32,
    pub datacenter: String,
}

/// Answer of evaluate and purge (Nomad's full `NodeUpdateResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeUpdateResponse {
    /// Nanoseconds.
    #[serde(rename = "HeartbeatTTL")]
    pub heartbeat_ttl: u64,
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Option<Vec<String>>,
    pub eval_create_index: u64,
    pub node_modify_index: u64,
    pub features: u64,
    #[serde(rename = "LeaderRPCAddr")]
    pub leader_rpc_addr: String,
    pub num_nodes: u64,
    pub servers: Option<Vec<NodeServerInfo>>,
    pub scheduling_eligibility: String,
    pub signed_identity: Option<String>,
    pub index: u64,
    pub last_contact: u64,
    pub known_leader: bool,
    pub next_token: String,
}
