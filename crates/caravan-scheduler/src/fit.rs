//! The fit check: does a node hold its allocations plus one more?
//!
//! The scheduler and the plan applier call the same code ([`fit`], or
//! [`NodeUsage`] for many allocations at once), so the two can never
//! disagree about a node (Nomad's workers and applier ran different checks
//! and looped on the difference, scheduling.md §13).
//!
//! Memory is checked on `MemoryMB`; `MemoryMaxMB` (oversubscription) is a
//! limit, not a reservation, as in Nomad. The scheduler leaves it 0 unless
//! the scheduler configuration enables oversubscription.

use std::collections::BTreeSet;

use caravan_api_types::alloc::{AllocatedResources, Allocation};
use caravan_api_types::node::Node;

use crate::ports::NetworkIndex;

/// Why a node cannot take an allocation. `Display` is the dimension Nomad
/// records in `DimensionExhausted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    #[error("max allocation exceeded")]
    MaxAllocs,
    #[error("cpu")]
    Cpu,
    #[error("cores")]
    Cores,
    #[error("memory")]
    Memory,
    #[error("disk")]
    Disk,
    #[error("network: {0}")]
    Network(#[from] NetworkError),
}

/// A port problem, in Nomad's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("port collision")]
    PortCollision,
    #[error("reserved port collision {label}={port}")]
    ReservedPortCollision { label: String, port: u16 },
    #[error("dynamic port selection failed")]
    DynamicPortSelectionFailed,
    #[error("invalid port {0} (out of range)")]
    OutOfRange(i64),
    #[error("missing host network \"{network}\" for port \"{label}\"")]
    MissingHostNetwork { network: String, label: String },
}

/// What a node offers to allocations: its resources minus what it reserves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: i64,
    pub memory_mb: i64,
    pub disk_mb: i64,
    /// 0: no limit (`NodeMaxAllocs`).
    pub max_allocs: u64,
}

impl Capacity {
    pub fn of(node: &Node) -> Self {
        let (mut cpu, mut memory_mb, mut disk_mb) = match (&node.node_resources, &node.resources) {
            (Some(r), _) => (
                r.cpu.cpu_shares as i64,
                r.memory.memory_mb as i64,
                r.disk.disk_mb as i64,
            ),
            (None, Some(legacy)) => (
                legacy.cpu as i64,
                legacy.memory_mb as i64,
                legacy.disk_mb as i64,
            ),
            (None, None) => (0, 0, 0),
        };
        match (&node.reserved_resources, &node.reserved) {
            (Some(r), _) => {
                cpu -= r.cpu.cpu_shares as i64;
                memory_mb -= r.memory.memory_mb as i64;
                disk_mb -= r.disk.disk_mb as i64;
            }
            (None, Some(legacy)) => {
                cpu -= legacy.cpu as i64;
                memory_mb -= legacy.memory_mb as i64;
                disk_mb -= legacy.disk_mb as i64;
            }
            (None, None) => {}
        }
        Self {
            cpu,
            memory_mb,
            disk_mb,
            max_allocs: node.node_max_allocs,
        }
    }
}

/// Cores a node may hand out: its reservable cores minus those it keeps.
pub fn reservable_cores(node: &Node) -> BTreeSet<u16> {
    let Some(resources) = &node.node_resources else {
        return BTreeSet::new();
    };
    let kept: BTreeSet<u64> = node
        .reserved_resources
        .iter()
        .flat_map(|r| r.cpu.reserved_cpu_cores.iter().copied())
        .collect();
    resources
        .cpu
        .reservable_cpu_cores
        .iter()
        .filter(|core| !kept.contains(core))
        .filter_map(|core| u16::try_from(*core).ok())
        .collect()
}

fn reserved_cores_of(resources: &AllocatedResources) -> impl Iterator<Item = u16> + '_ {
    resources
        .tasks
        .values()
        .flat_map(|task| task.cpu.reserved_cores.iter().flatten().copied())
}

fn has_ports(resources: &AllocatedResources) -> bool {
    !crate::ports::alloc_ports(resources).is_empty()
}

/// What one allocation asks of a node, in the terms the fit check uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    pub cpu: i64,
    pub memory_mb: i64,
    pub disk_mb: i64,
    pub cores: Vec<u16>,
    /// `(host IP, port, ignore_collision)`.
    pub ports: Vec<(String, u16, bool)>,
}

impl Ask {
    pub fn of(resources: &AllocatedResources) -> Self {
        let (cpu, memory_mb, disk_mb) = resources.totals();
        Self {
            cpu,
            memory_mb,
            disk_mb,
            cores: reserved_cores_of(resources).collect(),
            ports: crate::ports::alloc_ports(resources),
        }
    }
}

/// What a node's allocations use. Built once per node and updated as
/// allocations are added, so checking one more is O(its tasks).
#[derive(Debug, Clone)]
pub struct NodeUsage {
    pub capacity: Capacity,
    pub cpu: i64,
    pub memory_mb: i64,
    pub disk_mb: i64,
    pub allocs: u64,
    pub cores: BTreeSet<u16>,
    /// Built on first need: most allocations hold no host ports.
    ports: Option<NetworkIndex>,
    /// Allocations already placed whose ports still have to be indexed.
    pending_ports: Vec<AllocatedResources>,
    /// Existing allocations collide with each other on a port.
    port_collision: bool,
}

impl NodeUsage {
    /// The usage of `existing`; client-terminal ones are skipped (they hold
    /// nothing), server-terminal ones are the caller's to leave out.
    pub fn new<'a>(node: &Node, existing: impl IntoIterator<Item = &'a Allocation>) -> Self {
        let mut usage = Self {
            capacity: Capacity::of(node),
            cpu: 0,
            memory_mb: 0,
            disk_mb: 0,
            allocs: 0,
            cores: BTreeSet::new(),
            ports: None,
            pending_ports: Vec::new(),
            port_collision: false,
        };
        for alloc in existing {
            if alloc.client_terminal() {
                continue;
            }
            if let Some(resources) = &alloc.allocated_resources {
                usage.commit(resources);
            } else {
                usage.allocs += 1;
            }
        }
        usage
    }

    /// The node's port index, indexing every allocation added so far.
    pub fn network_index(&mut self, node: &Node) -> &mut NetworkIndex {
        let index = self.ports.get_or_insert_with(|| NetworkIndex::new(node));
        for resources in self.pending_ports.drain(..) {
            if index.add_allocation(&resources).is_err() {
                self.port_collision = true;
            }
        }
        index
    }

    /// Whether `proposed` fits beside what is already counted. Nothing is
    /// recorded; see [`Self::commit`].
    pub fn check(&mut self, node: &Node, proposed: &Ask) -> Result<(), Exhausted> {
        if self.capacity.max_allocs != 0 && self.allocs + 1 > self.capacity.max_allocs {
            return Err(Exhausted::MaxAllocs);
        }
        if self.cpu + proposed.cpu > self.capacity.cpu {
            return Err(Exhausted::Cpu);
        }
        if !proposed.cores.is_empty() {
            let allowed = reservable_cores(node);
            let mut seen = BTreeSet::new();
            for core in &proposed.cores {
                if !allowed.contains(core) || self.cores.contains(core) || !seen.insert(*core) {
                    return Err(Exhausted::Cores);
                }
            }
        }
        if self.memory_mb + proposed.memory_mb > self.capacity.memory_mb {
            return Err(Exhausted::Memory);
        }
        if self.disk_mb + proposed.disk_mb > self.capacity.disk_mb {
            return Err(Exhausted::Disk);
        }
        if !proposed.ports.is_empty() {
            let collided = self.network_index(node).collides(&proposed.ports);
            if self.port_collision || collided {
                return Err(Exhausted::Network(NetworkError::PortCollision));
            }
        }
        Ok(())
    }

    /// Cores no allocation holds yet, lowest first.
    pub fn free_cores(&self, node: &Node, count: usize) -> Option<Vec<u16>> {
        let free: Vec<u16> = reservable_cores(node)
            .into_iter()
            .filter(|core| !self.cores.contains(core))
            .take(count)
            .collect();
        (free.len() == count).then_some(free)
    }

    /// Counts `resources` as used (after a successful [`Self::check`], or
    /// for allocations that already exist).
    pub fn commit(&mut self, resources: &AllocatedResources) {
        let (cpu, memory, disk) = resources.totals();
        self.cpu += cpu;
        self.memory_mb += memory;
        self.disk_mb += disk;
        self.allocs += 1;
        self.cores.extend(reserved_cores_of(resources));
        if has_ports(resources) {
            match &mut self.ports {
                Some(index) => {
                    if index.add_allocation(resources).is_err() {
                        self.port_collision = true;
                    }
                }
                None => self.pending_ports.push(resources.clone()),
            }
        }
    }

    /// Takes back an allocation counted earlier (a stop in the same plan).
    pub fn release(&mut self, resources: &AllocatedResources) {
        let (cpu, memory, disk) = resources.totals();
        self.cpu -= cpu;
        self.memory_mb -= memory;
        self.disk_mb -= disk;
        self.allocs = self.allocs.saturating_sub(1);
        for core in reserved_cores_of(resources) {
            self.cores.remove(&core);
        }
        if has_ports(resources) {
            match &mut self.ports {
                Some(index) => index.remove_allocation(resources),
                None => self.pending_ports.retain(|pending| pending != resources),
            }
        }
    }

    /// The fraction of CPU and memory free after adding `cpu`/`memory`
    /// (what binpack scores on).
    pub fn free_fractions(&self, cpu: i64, memory: i64) -> (f64, f64) {
        let free = |used: i64, total: i64| {
            if total <= 0 {
                0.0
            } else {
                1.0 - used as f64 / total as f64
            }
        };
        (
            free(self.cpu + cpu, self.capacity.cpu),
            free(self.memory_mb + memory, self.capacity.memory_mb),
        )
    }
}

/// Whether `proposed` fits on `node` beside `existing` (its non-terminal
/// allocations). The plan applier calls this for every new allocation of
/// a plan, with the plan's earlier allocations for that node in
/// `existing`; the scheduler runs the same [`NodeUsage`] checks.
pub fn fit(
    node: &Node,
    existing: &[&Allocation],
    proposed: &AllocatedResources,
) -> Result<(), Exhausted> {
    let mut usage = NodeUsage::new(node, existing.iter().copied());
    usage.check(node, &Ask::of(proposed))
}
