//! Feasibility: which nodes may run a task group at all, before ranking.
//!
//! Job and group checks are cached per computed node class for the rest of
//! the evaluation (Nomad's `FeasibilityWrapper`), unless a constraint reads
//! something unique to a node (the job or group "escapes"). Host volumes
//! are checked per node after the cached checks ([`volumes`]).

pub mod constraint;
pub mod version;
pub mod volumes;
#[cfg(test)]
mod volumes_tests;

use std::collections::{BTreeMap, HashSet};

use crate::rng::FxHashMap as HashMap;

use caravan_api_types::eval::AllocMetric;
use caravan_api_types::job::{Constraint, Job, NetworkResource, TaskGroup};
use caravan_api_types::node::{Node, ELIGIBLE, NODE_STATUS_READY};

use crate::metrics::filter_node;
use constraint::{
    is_unique_target, node_satisfies, RegexCache, OP_DISTINCT_HOSTS, OP_DISTINCT_PROPERTY,
};
use volumes::{has_host_volumes, host_volume_asks, HostVolumeAsk, REASON_MISSING_HOST_VOLUMES};

pub const REASON_CLASS_INELIGIBLE: &str = "computed class ineligible";
pub const REASON_MISSING_DRIVERS: &str = "missing drivers";
pub const REASON_MISSING_NETWORK: &str = "missing network";
pub const REASON_DISTINCT_HOSTS: &str = "distinct_hosts";

/// `Ready()`: status ready, not draining, eligible.
pub fn node_ready(node: &Node) -> bool {
    node.status == NODE_STATUS_READY
        && node.drain_strategy.is_none()
        && node.scheduling_eligibility == ELIGIBLE
}

/// go-glob: `*` matches any run of characters, anywhere in the pattern.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The node is in one of the job's datacenters (globs allowed).
pub fn in_datacenters(job: &Job, node: &Node) -> bool {
    job.datacenters
        .iter()
        .flatten()
        .any(|pattern| glob_match(pattern, &node.datacenter))
}

/// The node is in the job's pool (`all` or empty: every pool).
pub fn in_pool(job: &Job, node: &Node) -> bool {
    job.node_pool.is_empty() || job.node_pool == "all" || job.node_pool == node.node_pool
}

/// Drivers: `Drivers[name]` detected and healthy, else the
/// `driver.<name>` attribute parses as true.
pub fn has_driver(node: &Node, driver: &str) -> bool {
    match node.drivers.get(driver) {
        Some(info) => info.detected && info.healthy,
        None => node
            .attributes
            .get(&format!("driver.{driver}"))
            .is_some_and(|value| {
                matches!(value.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
            }),
    }
}

fn has_network_mode(node: &Node, mode: &str) -> bool {
    let networks = node.node_resources.as_ref();
    let node_networks = networks.and_then(|r| r.node_networks.as_ref());
    let legacy = networks.and_then(|r| r.networks.as_ref());
    match node_networks {
        Some(list) if !list.is_empty() => list.iter().any(|n| n.mode == mode),
        // A node without fingerprinted networks offers host networking.
        _ => mode == "host" || legacy.into_iter().flatten().any(|n| n.mode == mode),
    }
}

/// The group's network asks against what the node offers.
fn network_reason(node: &Node, networks: &[NetworkResource]) -> Option<String> {
    for network in networks {
        let mode = if network.mode.is_empty() {
            "host"
        } else {
            network.mode.as_str()
        };
        if mode == "none" {
            continue;
        }
        if !has_network_mode(node, mode) {
            return Some(REASON_MISSING_NETWORK.to_string());
        }
        for port in network.ports() {
            if !port.host_network.is_empty()
                && crate::ports::host_ip(node, &port.host_network).is_none()
            {
                return Some(format!(
                    "missing host network \"{}\" for port \"{}\"",
                    port.host_network, port.label
                ));
            }
        }
    }
    None
}

fn split_constraints<'a>(
    all: impl Iterator<Item = &'a Constraint>,
) -> (Vec<Constraint>, bool, Vec<(String, u64)>) {
    let mut checks = Vec::new();
    let mut distinct_hosts = false;
    let mut distinct_properties = Vec::new();
    for constraint in all {
        match constraint.operand.as_str() {
            // An unparsable value means true, as in Nomad.
            OP_DISTINCT_HOSTS => distinct_hosts |= constraint.r_target != "false",
            OP_DISTINCT_PROPERTY => {
                let limit = constraint.r_target.parse().unwrap_or(1).max(1);
                distinct_properties.push((constraint.l_target.clone(), limit));
            }
            _ => checks.push(constraint.clone()),
        }
    }
    (checks, distinct_hosts, distinct_properties)
}

/// What one group asks of a node.
#[derive(Debug, Clone)]
pub struct GroupChecks {
    pub drivers: Vec<String>,
    pub constraints: Vec<Constraint>,
    pub networks: Vec<NetworkResource>,
    pub escaped: bool,
    pub distinct_hosts: bool,
    pub distinct_properties: Vec<(String, u64)>,
    /// Checked per node, never cached by class.
    pub host_volumes: Vec<HostVolumeAsk>,
}

impl GroupChecks {
    fn new(group: &TaskGroup) -> Self {
        let all = group.constraints.iter().flatten().chain(
            group
                .tasks
                .iter()
                .flat_map(|t| t.constraints.iter().flatten()),
        );
        let (constraints, distinct_hosts, distinct_properties) = split_constraints(all);
        let mut drivers: Vec<String> = group.tasks.iter().map(|t| t.driver.clone()).collect();
        drivers.sort();
        drivers.dedup();
        drivers.retain(|d| !d.is_empty());
        let escaped = constraints
            .iter()
            .any(|c| is_unique_target(&c.l_target) || is_unique_target(&c.r_target))
            || group
                .volumes
                .as_ref()
                .is_some_and(|v| v.to_string().contains("\"csi\""));
        Self {
            drivers,
            constraints,
            networks: group.networks.clone().unwrap_or_default(),
            escaped,
            distinct_hosts,
            distinct_properties,
            host_volumes: host_volume_asks(group),
        }
    }
}

/// The feasibility checks of one job for one evaluation, with their
/// per-class memo.
#[derive(Debug)]
pub struct Feasibility {
    job_constraints: Vec<Constraint>,
    job_escaped: bool,
    pub job_distinct_hosts: bool,
    pub job_distinct_properties: Vec<(String, u64)>,
    groups: HashMap<String, GroupChecks>,
    job_class: HashMap<String, bool>,
    group_class: HashMap<String, HashMap<String, bool>>,
    regexes: RegexCache,
}

impl Feasibility {
    pub fn new(job: &Job) -> Self {
        let (job_constraints, job_distinct_hosts, job_distinct_properties) =
            split_constraints(job.constraints.iter().flatten());
        let job_escaped = job_constraints
            .iter()
            .any(|c| is_unique_target(&c.l_target) || is_unique_target(&c.r_target));
        Self {
            job_constraints,
            job_escaped,
            job_distinct_hosts,
            job_distinct_properties,
            groups: job
                .task_groups
                .iter()
                .map(|g| (g.name.clone(), GroupChecks::new(g)))
                .collect(),
            job_class: HashMap::default(),
            group_class: HashMap::default(),
            regexes: RegexCache::default(),
        }
    }

    pub fn group(&self, name: &str) -> Option<&GroupChecks> {
        self.groups.get(name)
    }

    /// Whether a job-level constraint escapes class caching.
    pub fn job_escaped(&self) -> bool {
        self.job_escaped
    }

    /// Whether any constraint of the job or a group escapes class caching.
    pub fn escaped(&self) -> bool {
        self.job_escaped || self.groups.values().any(|g| g.escaped)
    }

    fn job_reason(&mut self, node: &Node) -> Option<String> {
        for c in &self.job_constraints {
            if !node_satisfies(
                &c.l_target,
                &c.operand,
                &c.r_target,
                node,
                &mut self.regexes,
            ) {
                return Some(c.to_string());
            }
        }
        None
    }

    fn group_reason(&mut self, group: &str, node: &Node) -> Option<String> {
        let checks = self.groups.get(group)?;
        if checks.drivers.iter().any(|d| !has_driver(node, d)) {
            return Some(REASON_MISSING_DRIVERS.to_string());
        }
        for c in &checks.constraints {
            if !node_satisfies(
                &c.l_target,
                &c.operand,
                &c.r_target,
                node,
                &mut self.regexes,
            ) {
                return Some(c.to_string());
            }
        }
        network_reason(node, &checks.networks)
    }

    /// Whether `node` may run `group`; a rejection is recorded in `metrics`.
    pub fn check(&mut self, group: &str, node: &Node, metrics: &mut AllocMetric) -> bool {
        self.check_class(group, node, metrics) && self.available(group, node, metrics)
    }

    /// What the node's own state offers `group` now (Nomad's "available"
    /// checkers): host volumes. Run after [`Self::check_class`] passes, for
    /// every node, whatever its class; a rejection is recorded in `metrics`.
    pub fn available(&self, group: &str, node: &Node, metrics: &mut AllocMetric) -> bool {
        let asks = self.groups.get(group).map(|g| g.host_volumes.as_slice());
        if has_host_volumes(node, asks.unwrap_or_default()) {
            return true;
        }
        filter_node(metrics, node, REASON_MISSING_HOST_VOLUMES);
        false
    }

    /// The checks whose result holds for the node's whole class (job and
    /// group constraints, drivers, networks), memoized by class unless
    /// escaped; a rejection is recorded in `metrics`.
    pub fn check_class(&mut self, group: &str, node: &Node, metrics: &mut AllocMetric) -> bool {
        let class = node.computed_class.as_str();
        let job_cacheable = !class.is_empty() && !self.job_escaped;
        match job_cacheable
            .then(|| self.job_class.get(class).copied())
            .flatten()
        {
            Some(false) => {
                filter_node(metrics, node, REASON_CLASS_INELIGIBLE);
                return false;
            }
            Some(true) => {}
            None => {
                let reason = self.job_reason(node);
                if job_cacheable {
                    self.job_class.insert(class.to_string(), reason.is_none());
                }
                if let Some(reason) = reason {
                    filter_node(metrics, node, &reason);
                    return false;
                }
            }
        }
        let group_cacheable =
            !class.is_empty() && self.groups.get(group).is_some_and(|g| !g.escaped);
        let cached = group_cacheable
            .then(|| {
                self.group_class
                    .get(group)
                    .and_then(|m| m.get(class))
                    .copied()
            })
            .flatten();
        match cached {
            Some(false) => {
                filter_node(metrics, node, REASON_CLASS_INELIGIBLE);
                false
            }
            Some(true) => true,
            None => {
                let reason = self.group_reason(group, node);
                if group_cacheable {
                    self.group_class
                        .entry(group.to_string())
                        .or_default()
                        .insert(class.to_string(), reason.is_none());
                }
                match reason {
                    Some(reason) => {
                        filter_node(metrics, node, &reason);
                        false
                    }
                    None => true,
                }
            }
        }
    }

    /// What the evaluation learned per class, for a blocked eval's
    /// `ClassEligibility`: eligible when the job checks pass and some group
    /// passes.
    pub fn class_eligibility(&self) -> BTreeMap<String, bool> {
        let mut classes: HashSet<&String> = self.job_class.keys().collect();
        classes.extend(self.group_class.values().flat_map(|m| m.keys()));
        classes
            .into_iter()
            .map(|class| {
                let job_ok = self.job_class.get(class).copied().unwrap_or(true);
                let group_ok = self
                    .group_class
                    .values()
                    .any(|m| m.get(class).copied().unwrap_or(false))
                    || self.group_class.values().all(|m| !m.contains_key(class));
                (class.clone(), job_ok && group_ok)
            })
            .collect()
    }
}
