//! Fitting one allocation on one node: its ports, cores and the fit
//! check; and, when the stack may evict, the lower-priority allocations
//! whose eviction makes it fit (scheduling.md §5).
//!
//! The eviction path chooses its victims on plain numbers
//! ([`crate::preempt::choose`]), then runs the very same checks as the
//! plain path on the node's usage with the victims taken out, so a node is
//! only offered when the plan applier's fit check (which counts an
//! eviction as freeing its room, like any stop) will accept it.

use std::collections::HashSet;
use std::sync::Arc;

use caravan_api_types::alloc::{AllocatedPortMapping, Allocation};
use caravan_api_types::job::Job;
use caravan_api_types::node::Node;

use crate::fit::{Ask, Exhausted, NodeUsage};
use crate::ports::alloc_ports;
use crate::preempt::{self, Candidate, Room};
use crate::rng::{FxHashMap as HashMap, SplitMix64};
use crate::state::StateView;

use super::resources::{ask_for, cpu_per_core};
use super::GroupPlan;

/// A victim's job (namespace, ID) and group: what `max_parallel` limits.
pub(super) type Family = (String, String, String);

pub(super) fn family_of(alloc: &Allocation) -> Family {
    (
        alloc.namespace.clone(),
        alloc.job_id.clone(),
        alloc.task_group.clone(),
    )
}

/// What a node gives one allocation.
#[derive(Debug)]
pub(super) struct Fitted {
    pub(super) ports: Vec<AllocatedPortMapping>,
    pub(super) cores: Vec<u16>,
    pub(super) ask: Ask,
    /// The allocations to evict for it (none on the plain path).
    pub(super) victims: Vec<Arc<Allocation>>,
    /// What the victims free.
    pub(super) freed: Room,
    /// The victims' net priority (the `preemption` score's input).
    pub(super) net_priority: f64,
}

/// Ports, cores and the fit check against `usage` as it is.
pub(super) fn fit_plain(
    usage: &mut NodeUsage,
    node: &Node,
    plan: &GroupPlan<'_>,
    rng: &mut SplitMix64,
) -> Result<Fitted, Exhausted> {
    let group = plan.group;
    let ports = if plan.has_ports {
        let networks = group.networks.as_deref().unwrap_or_default();
        usage
            .network_index(node)
            .assign_ports(node, networks, rng)
            .map_err(Exhausted::Network)?
    } else {
        Vec::new()
    };
    let cores = if plan.cores_wanted > 0 {
        usage
            .free_cores(node, plan.cores_wanted)
            .ok_or(Exhausted::Cores)?
    } else {
        Vec::new()
    };
    let per_core = if plan.cores_wanted > 0 {
        cpu_per_core(node)
    } else {
        0
    };
    let ask = ask_for(group, per_core, &cores, &ports);
    usage.check(node, &ask)?;
    Ok(Fitted {
        ports,
        cores,
        ask,
        victims: Vec::new(),
        freed: Room::default(),
        net_priority: 0.0,
    })
}

fn room_of(alloc: &Allocation) -> Room {
    let (cpu, memory_mb, disk_mb) = alloc
        .allocated_resources
        .as_ref()
        .map_or((0, 0, 0), |r| r.totals());
    Room {
        cpu,
        memory_mb,
        disk_mb,
        allocs: 1,
    }
}

/// One allocation that may be evicted, with what choosing needs.
struct Eligible {
    alloc: Arc<Allocation>,
    candidate: Candidate,
}

/// What the eviction path reads besides the node.
pub(super) struct Evictor<'a> {
    pub(super) state: &'a dyn StateView,
    /// The job being placed.
    pub(super) job: &'a Job,
    /// The plan's stops (evictions included): they hold no room already.
    pub(super) stopped: &'a HashSet<String>,
    /// Evictions the plan holds so far, per job and group.
    pub(super) preempted: &'a HashMap<Family, u32>,
}

impl Evictor<'_> {
    /// The allocations on `node` this job may evict: live ones of other
    /// jobs at least [`preempt::MIN_PRIORITY_DELTA`] below it, not already
    /// stopped by the plan (the plan's own placements are not in the state,
    /// so never victims). `families` collects their job/group keys.
    fn eligible(&self, node: &Node, families: &mut Vec<Family>) -> Vec<Eligible> {
        let mut eligible = Vec::new();
        for alloc in self.state.allocs_by_node(&node.id) {
            if alloc.terminal()
                || self.stopped.contains(&alloc.id)
                || (alloc.namespace == self.job.namespace && alloc.job_id == self.job.id)
            {
                continue;
            }
            let job = match &alloc.job {
                Some(job) => Arc::clone(job),
                None => match self.state.job(&alloc.namespace, &alloc.job_id) {
                    Some(job) => job,
                    None => continue,
                },
            };
            if !preempt::may_preempt(self.job.priority, job.priority) {
                continue;
            }
            let max_parallel = job
                .group(&alloc.task_group)
                .and_then(|g| g.migrate.as_ref())
                .map_or(0, |m| m.max_parallel);
            let key = family_of(&alloc);
            let family = match families.iter().position(|f| *f == key) {
                Some(at) => at,
                None => {
                    families.push(key);
                    families.len() - 1
                }
            };
            eligible.push(Eligible {
                candidate: Candidate {
                    priority: job.priority,
                    room: room_of(&alloc),
                    family,
                    max_parallel,
                },
                alloc,
            });
        }
        eligible
    }

    /// The victims that make the group fit on `node`, with the fit they
    /// give, or `None` when no set of eligible allocations does.
    pub(super) fn fit(
        &self,
        usage: &NodeUsage,
        node: &Node,
        plan: &GroupPlan<'_>,
        rng: &mut SplitMix64,
    ) -> Option<Fitted> {
        let mut families = Vec::new();
        let eligible = self.eligible(node, &mut families);
        if eligible.is_empty() {
            return None;
        }
        // A static port the group needs that an eligible allocation holds
        // can only be had by evicting that one. One held by an allocation
        // that may not be evicted makes the node fail in the final check.
        let needed_ports: Vec<u16> = plan
            .group
            .networks
            .iter()
            .flatten()
            .flat_map(|n| n.reserved_ports.iter().flatten())
            .filter(|p| !p.ignore_collision)
            .filter_map(|p| u16::try_from(p.value).ok())
            .filter(|p| *p != 0)
            .collect();
        let holds_needed_port = |alloc: &Allocation| {
            !needed_ports.is_empty()
                && alloc.allocated_resources.as_ref().is_some_and(|r| {
                    alloc_ports(r)
                        .iter()
                        .any(|(_, port, ignore)| !ignore && needed_ports.contains(port))
                })
        };
        let (forced, optional): (Vec<Eligible>, Vec<Eligible>) = eligible
            .into_iter()
            .partition(|e| holds_needed_port(&e.alloc));
        let per_core = if plan.cores_wanted > 0 {
            cpu_per_core(node)
        } else {
            0
        };
        let ask = ask_for(plan.group, per_core, &[], &[]);
        let capacity = usage.capacity;
        let mut shortfall = Room {
            cpu: ask.cpu - (capacity.cpu - usage.cpu),
            memory_mb: ask.memory_mb - (capacity.memory_mb - usage.memory_mb),
            disk_mb: ask.disk_mb - (capacity.disk_mb - usage.disk_mb),
            allocs: if capacity.max_allocs == 0 {
                0
            } else {
                (usage.allocs + 1) as i64 - capacity.max_allocs as i64
            },
        };
        let mut counts: Vec<u32> = families
            .iter()
            .map(|f| self.preempted.get(f).copied().unwrap_or(0))
            .collect();
        for e in &forced {
            shortfall = shortfall.minus(e.candidate.room);
            counts[e.candidate.family] += 1;
        }
        let candidates: Vec<Candidate> = optional.iter().map(|e| e.candidate.clone()).collect();
        let picked = preempt::choose(&candidates, shortfall, &counts)?;
        let victims: Vec<&Eligible> = forced
            .iter()
            .chain(picked.iter().map(|&i| &optional[i]))
            .collect();
        if victims.is_empty() {
            // Nothing to free helps: the plain failure stands.
            return None;
        }
        let mut after = usage.clone();
        let mut freed = Room::default();
        for victim in &victims {
            match &victim.alloc.allocated_resources {
                Some(resources) => after.release(resources),
                None => after.allocs = after.allocs.saturating_sub(1),
            }
            freed = freed.plus(victim.candidate.room);
        }
        let mut fitted = fit_plain(&mut after, node, plan, rng).ok()?;
        let priorities: Vec<i64> = victims.iter().map(|v| v.candidate.priority).collect();
        fitted.net_priority = preempt::net_priority(&priorities);
        fitted.freed = freed;
        fitted.victims = victims.iter().map(|v| Arc::clone(&v.alloc)).collect();
        Some(fitted)
    }
}
