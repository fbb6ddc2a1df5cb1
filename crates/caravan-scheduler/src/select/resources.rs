//! What an allocation is given on a node: its ask for the fit check and
//! its `AllocatedResources`.

use std::collections::BTreeMap;

use caravan_api_types::alloc::{
    AllocatedCpu, AllocatedMemory, AllocatedPortMapping, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources,
};
use caravan_api_types::job::TaskGroup;
use caravan_api_types::node::Node;

use crate::fit::Ask;

pub(super) fn cpu_per_core(node: &Node) -> i64 {
    node.node_resources
        .as_ref()
        .filter(|r| r.cpu.total_cpu_cores > 0)
        .map_or(0, |r| (r.cpu.cpu_shares / r.cpu.total_cpu_cores) as i64)
}

fn task_cpu(task_cpu: i64, task_cores: i64, per_core: i64) -> i64 {
    if task_cores > 0 {
        task_cores * per_core
    } else {
        task_cpu
    }
}

/// `per_core`: the node's MHz per core ([`cpu_per_core`]), needed only
/// when a task reserves cores; passing the number rather than the node
/// keeps the hot path off the node's memory.
pub(super) fn ask_for(
    group: &TaskGroup,
    per_core: i64,
    cores: &[u16],
    ports: &[AllocatedPortMapping],
) -> Ask {
    Ask {
        cpu: group
            .tasks
            .iter()
            .map(|t| task_cpu(t.resources.cpu, t.resources.cores, per_core))
            .sum(),
        memory_mb: group.tasks.iter().map(|t| t.resources.memory_mb).sum(),
        disk_mb: group.ephemeral_disk.size_mb,
        cores: cores.to_vec(),
        ports: ports
            .iter()
            .filter_map(|p| {
                Some((
                    p.host_ip.clone(),
                    u16::try_from(p.value).ok()?,
                    p.ignore_collision,
                ))
            })
            .collect(),
    }
}

/// The allocation's resources on `node`, with the ports and cores chosen.
pub fn build_resources(
    group: &TaskGroup,
    node: &Node,
    cores: &[u16],
    ports: Vec<AllocatedPortMapping>,
    oversubscription: bool,
) -> AllocatedResources {
    let mut tasks = BTreeMap::new();
    let mut task_lifecycles = BTreeMap::new();
    let mut next_core = 0;
    for task in &group.tasks {
        let r = &task.resources;
        let reserved = (r.cores > 0).then(|| {
            let take = r.cores as usize;
            let slice =
                cores[next_core.min(cores.len())..(next_core + take).min(cores.len())].to_vec();
            next_core += take;
            slice
        });
        tasks.insert(
            task.name.clone(),
            AllocatedTaskResources {
                cpu: AllocatedCpu {
                    cpu_shares: task_cpu(r.cpu, r.cores, cpu_per_core(node)),
                    reserved_cores: reserved,
                },
                memory: AllocatedMemory {
                    memory_mb: r.memory_mb,
                    memory_max_mb: if oversubscription && r.memory_max_mb > r.memory_mb {
                        r.memory_max_mb
                    } else {
                        0
                    },
                },
                networks: None,
                devices: None,
            },
        );
        task_lifecycles.insert(task.name.clone(), task.lifecycle.clone());
    }
    let networks = group.networks.as_ref().map(|networks| {
        networks
            .iter()
            .map(|network| {
                let mut network = network.clone();
                for port in network
                    .reserved_ports
                    .iter_mut()
                    .flatten()
                    .chain(network.dynamic_ports.iter_mut().flatten())
                {
                    if let Some(given) = ports.iter().find(|p| p.label == port.label) {
                        port.value = given.value;
                        port.to = given.to;
                        if network.ip.is_empty() {
                            network.ip = given.host_ip.clone();
                        }
                    }
                }
                network
            })
            .collect()
    });
    AllocatedResources {
        tasks,
        task_lifecycles,
        shared: AllocatedSharedResources {
            networks,
            disk_mb: group.ephemeral_disk.size_mb,
            ports: (!ports.is_empty()).then_some(ports),
        },
    }
}
