//! The placement stack: shuffled nodes → feasibility → distinct_hosts →
//! distinct_property → fit → scores → limit → best (Nomad's `GenericStack`;
//! the system stack is [`Stack::select_node`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use caravan_api_types::alloc::{
    AllocatedCpu, AllocatedMemory, AllocatedPortMapping, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources, Allocation,
};
use caravan_api_types::eval::{AllocMetric, NodeScoreMeta};
use caravan_api_types::job::{Job, Spread, TaskGroup, JOB_TYPE_BATCH};
use caravan_api_types::node::Node;

use crate::feasible::constraint::RegexCache;
use crate::feasible::{in_datacenters, in_pool, node_ready, Feasibility, REASON_DISTINCT_HOSTS};
use crate::fit::{Ask, Exhausted, NodeUsage};
use crate::metrics::{exhaust_node, filter_node, TopScores};
use crate::rank::spread::{spread_boost, PropertyCounts, SpreadScore};
use crate::rank::{self, Algorithm};
use crate::rng::SplitMix64;
use crate::state::StateView;

/// Nodes with a score ≤ 0 the limit may pass over (Nomad's `maxSkip`).
const MAX_SKIP: usize = 3;
/// `NodeLimitForFeasibilityChecks` when the configuration leaves it 0.
const DEFAULT_SPREAD_LIMIT: u64 = 100;

/// The scheduler configuration's knobs the stack uses.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    pub algorithm: Algorithm,
    pub memory_oversubscription: bool,
    pub node_limit_for_feasibility_checks: u64,
}

/// What a node holds for this evaluation: its usage and this job's
/// allocations per group (existing live ones, minus the plan's stops, plus
/// the plan's placements).
#[derive(Debug)]
struct NodeState {
    usage: NodeUsage,
    job_groups: HashMap<String, u32>,
}

/// A node that passed, and what it would give.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub node: Arc<Node>,
    pub resources: AllocatedResources,
    pub score: f64,
}

#[derive(Debug)]
struct Candidate {
    node: usize,
    ports: Vec<AllocatedPortMapping>,
    cores: Vec<u16>,
    score: f64,
}

/// One evaluation's placement stack for one job.
pub struct Stack<'s> {
    state: &'s dyn StateView,
    job: Arc<Job>,
    nodes: Vec<Arc<Node>>,
    position: usize,
    pub nodes_available: BTreeMap<String, i64>,
    feasibility: Feasibility,
    node_states: HashMap<String, NodeState>,
    stopped: HashSet<String>,
    spreads: HashMap<String, Vec<SpreadScore>>,
    distinct: HashMap<String, Vec<(PropertyCounts, u64, bool)>>,
    rng: SplitMix64,
    options: StackOptions,
    regexes: RegexCache,
}

impl<'s> Stack<'s> {
    /// `nodes` is every node; the ready ones in the job's datacenters and
    /// pool are kept and shuffled. `stopped` holds the plan's stops.
    pub fn new(
        state: &'s dyn StateView,
        job: Arc<Job>,
        nodes: &[Arc<Node>],
        stopped: HashSet<String>,
        seed: u64,
        options: StackOptions,
    ) -> Self {
        let mut ready: Vec<Arc<Node>> = nodes
            .iter()
            .filter(|n| node_ready(n) && in_datacenters(&job, n) && in_pool(&job, n))
            .cloned()
            .collect();
        // A stable order first, so the shuffle depends only on the seed.
        ready.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rng = SplitMix64::new(seed);
        rng.shuffle(&mut ready);
        let mut nodes_available = BTreeMap::new();
        for node in &ready {
            *nodes_available.entry(node.datacenter.clone()).or_insert(0) += 1;
        }
        let mut stack = Self {
            state,
            feasibility: Feasibility::new(&job),
            job,
            nodes: ready,
            position: 0,
            nodes_available,
            node_states: HashMap::new(),
            stopped,
            spreads: HashMap::new(),
            distinct: HashMap::new(),
            rng,
            options,
            regexes: RegexCache::default(),
        };
        stack.count_properties();
        stack
    }

    pub fn ready_nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    pub fn feasibility(&self) -> &Feasibility {
        &self.feasibility
    }

    /// Spread and distinct_property counts from the job's live allocations.
    fn count_properties(&mut self) {
        let job = self.job.clone();
        let job_spreads: Vec<&Spread> = job.spreads.iter().flatten().collect();
        for group in &job.task_groups {
            let spreads: Vec<&Spread> = job_spreads
                .iter()
                .copied()
                .chain(group.spreads.iter().flatten())
                .collect();
            if !spreads.is_empty() {
                self.spreads.insert(
                    group.name.clone(),
                    SpreadScore::for_group(&spreads, group.count),
                );
            }
            let mut distinct = Vec::new();
            for (property, limit) in &self.feasibility.job_distinct_properties {
                distinct.push((PropertyCounts::new(property), *limit, true));
            }
            if let Some(checks) = self.feasibility.group(&group.name) {
                for (property, limit) in &checks.distinct_properties {
                    distinct.push((PropertyCounts::new(property), *limit, false));
                }
            }
            if !distinct.is_empty() {
                self.distinct.insert(group.name.clone(), distinct);
            }
        }
        if self.spreads.is_empty() && self.distinct.is_empty() {
            return;
        }
        let allocs = self.state.allocs_by_job(&job.namespace, &job.id);
        for alloc in &allocs {
            if alloc.terminal() || self.stopped.contains(&alloc.id) {
                continue;
            }
            let Some(node) = self.state.node(&alloc.node_id) else {
                continue;
            };
            self.count_placement(&alloc.task_group, &node, 1);
        }
    }

    fn count_placement(&mut self, group: &str, node: &Node, delta: i64) {
        if let Some(spreads) = self.spreads.get_mut(group) {
            for spread in spreads {
                spread.used.add(node, delta);
            }
        }
        for (name, distinct) in self.distinct.iter_mut() {
            for (counts, _, job_level) in distinct {
                if *job_level || name == group {
                    counts.add(node, delta);
                }
            }
        }
    }

    fn node_state<'m>(
        states: &'m mut HashMap<String, NodeState>,
        state: &dyn StateView,
        stopped: &HashSet<String>,
        job: &Job,
        node: &Node,
    ) -> &'m mut NodeState {
        states.entry(node.id.clone()).or_insert_with(|| {
            let allocs = state.allocs_by_node(&node.id);
            let live: Vec<&Allocation> = allocs
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| !a.terminal() && !stopped.contains(&a.id))
                .collect();
            let mut job_groups = HashMap::new();
            for alloc in &live {
                if alloc.job_id == job.id && alloc.namespace == job.namespace {
                    *job_groups.entry(alloc.task_group.clone()).or_insert(0) += 1;
                }
            }
            NodeState {
                usage: NodeUsage::new(node, live.iter().copied()),
                job_groups,
            }
        })
    }

    /// Counts an allocation as stopped by the plan. Call before selecting on
    /// its node (the node's usage is read once, on first use).
    pub fn add_stopped(&mut self, alloc_id: &str) {
        self.stopped.insert(alloc_id.to_string());
    }

    /// Whether `node` passes the group's feasibility checks (no metrics).
    pub fn is_feasible(&mut self, group: &str, node: &Node) -> bool {
        let mut scratch = AllocMetric::default();
        self.feasibility.check(group, node, &mut scratch)
    }

    /// Gives back an allocation the plan no longer stops (its replacement
    /// was not placed): it holds its resources again.
    pub fn unstop(&mut self, alloc: &Allocation) {
        self.stopped.remove(&alloc.id);
        if let Some(node_state) = self.node_states.get_mut(&alloc.node_id) {
            if let Some(resources) = &alloc.allocated_resources {
                node_state.usage.commit(resources);
            }
            *node_state
                .job_groups
                .entry(alloc.task_group.clone())
                .or_insert(0) += 1;
        }
    }

    fn base_metrics(&self) -> AllocMetric {
        AllocMetric {
            nodes_in_pool: self.nodes.len() as i64,
            node_pool: self.job.node_pool.clone(),
            nodes_available: Some(self.nodes_available.clone()),
            ..AllocMetric::default()
        }
    }

    fn limit(&self, group: &TaskGroup) -> usize {
        let has_affinity_or_spread = self.spreads.contains_key(&group.name)
            || !rank::affinities(&self.job, group).is_empty();
        if has_affinity_or_spread {
            let floor = match self.options.node_limit_for_feasibility_checks {
                0 => DEFAULT_SPREAD_LIMIT,
                n => n,
            };
            return (group.count.max(0) as u64).max(floor) as usize;
        }
        if self.job.job_type == JOB_TYPE_BATCH {
            return 2;
        }
        let n = self.nodes.len().max(1) as f64;
        (n.log2().ceil() as usize).max(2)
    }

    /// Checks and scores node `index` for `group`.
    fn evaluate(
        &mut self,
        index: usize,
        group: &TaskGroup,
        penalty: &HashSet<String>,
        full_rank: bool,
        metrics: &mut AllocMetric,
        top: &mut TopScores,
    ) -> Option<Candidate> {
        let node = self.nodes[index].clone();
        metrics.nodes_evaluated += 1;
        if !self.feasibility.check(&group.name, &node, metrics) {
            return None;
        }
        let node_state = Self::node_state(
            &mut self.node_states,
            self.state,
            &self.stopped,
            &self.job,
            &node,
        );
        let group_checks = self.feasibility.group(&group.name);
        let distinct_group = group_checks.is_some_and(|g| g.distinct_hosts);
        let on_node_group = node_state.job_groups.get(&group.name).copied().unwrap_or(0);
        let on_node_job: u32 = node_state.job_groups.values().sum();
        if (self.feasibility.job_distinct_hosts && on_node_job > 0)
            || (distinct_group && on_node_group > 0)
        {
            filter_node(metrics, &node, REASON_DISTINCT_HOSTS);
            return None;
        }
        for (counts, limit, _) in self.distinct.get(&group.name).into_iter().flatten() {
            let Some(value) = counts.value_of(&node) else {
                filter_node(
                    metrics,
                    &node,
                    &format!("missing property \"{}\"", counts.property),
                );
                return None;
            };
            let used = counts.get(&value);
            if used >= *limit {
                let reason = format!(
                    "distinct_property: {}={} used by {} allocs",
                    counts.property, value, used
                );
                filter_node(metrics, &node, &reason);
                return None;
            }
        }
        let networks = group.networks.as_deref().unwrap_or_default();
        let ports = if networks.iter().any(|n| n.ports().next().is_some()) {
            let index = node_state.usage.network_index(&node);
            match index.assign_ports(&node, networks, &mut self.rng) {
                Ok(ports) => ports,
                Err(error) => {
                    exhaust_node(metrics, &node, &Exhausted::Network(error).to_string());
                    return None;
                }
            }
        } else {
            Vec::new()
        };
        let cores_wanted: usize = group
            .tasks
            .iter()
            .map(|t| t.resources.cores.max(0) as usize)
            .sum();
        let cores = if cores_wanted > 0 {
            match node_state.usage.free_cores(&node, cores_wanted) {
                Some(cores) => cores,
                None => {
                    exhaust_node(metrics, &node, &Exhausted::Cores.to_string());
                    return None;
                }
            }
        } else {
            Vec::new()
        };
        let ask = ask_for(group, &node, &cores, &ports);
        if let Err(exhausted) = node_state.usage.check(&node, &ask) {
            exhaust_node(metrics, &node, &exhausted.to_string());
            return None;
        }
        let (free_cpu, free_mem) = node_state.usage.free_fractions(ask.cpu, ask.memory_mb);
        let fit = self.options.algorithm.fit(free_cpu, free_mem) / rank::MAX_FIT;
        let mut scores = BTreeMap::new();
        scores.insert(rank::SCORER_BINPACK.to_string(), fit);
        let mut sum = fit;
        let mut n = 1.0;
        if full_rank {
            if let Some(value) = rank::anti_affinity(on_node_group, group.count) {
                scores.insert(rank::SCORER_ANTI_AFFINITY.to_string(), value);
                sum += value;
                n += 1.0;
            }
            let penalized = penalty.contains(&node.id);
            scores.insert(
                rank::SCORER_RESCHEDULE_PENALTY.to_string(),
                if penalized { -1.0 } else { 0.0 },
            );
            if penalized {
                sum -= 1.0;
                n += 1.0;
            }
            let affinities = rank::affinities(&self.job, group);
            if !affinities.is_empty() {
                let value = rank::affinity_score(&affinities, &node, &mut self.regexes);
                scores.insert(rank::SCORER_AFFINITY.to_string(), value);
                sum += value;
                n += 1.0;
            }
            if let Some(spreads) = self.spreads.get(&group.name) {
                let value = spread_boost(spreads, &node);
                if value != 0.0 {
                    scores.insert(rank::SCORER_SPREAD.to_string(), value);
                    sum += value;
                    n += 1.0;
                }
            }
        }
        let score = sum / n;
        top.offer(NodeScoreMeta {
            node_id: node.id.clone(),
            scores,
            norm_score: score,
        });
        Some(Candidate {
            node: index,
            ports,
            cores,
            score,
        })
    }

    /// Picks a node for one allocation of `group`, continuing the shuffled
    /// walk where the last selection stopped. `penalty` holds nodes the
    /// allocation failed on before.
    pub fn select(
        &mut self,
        group: &TaskGroup,
        penalty: &HashSet<String>,
    ) -> (Option<Chosen>, AllocMetric) {
        let mut metrics = self.base_metrics();
        let mut top = TopScores::default();
        let limit = self.limit(group);
        let total = self.nodes.len();
        let mut passed: Vec<Candidate> = Vec::new();
        let mut skipped: Vec<Candidate> = Vec::new();
        for _ in 0..total {
            let index = self.position;
            self.position = (self.position + 1) % total;
            let Some(candidate) =
                self.evaluate(index, group, penalty, true, &mut metrics, &mut top)
            else {
                continue;
            };
            if candidate.score <= 0.0 && skipped.len() < MAX_SKIP {
                skipped.push(candidate);
                continue;
            }
            passed.push(candidate);
            if passed.len() >= limit {
                break;
            }
        }
        let room = limit.saturating_sub(passed.len());
        passed.extend(skipped.into_iter().take(room));
        self.finish(group, passed, metrics, top)
    }

    /// The system stack: only `node`, binpack score only.
    pub fn select_node(
        &mut self,
        group: &TaskGroup,
        node_id: &str,
    ) -> (Option<Chosen>, AllocMetric) {
        let mut metrics = self.base_metrics();
        let mut top = TopScores::default();
        let mut passed = Vec::new();
        if let Some(index) = self.nodes.iter().position(|n| n.id == node_id) {
            let none = HashSet::new();
            passed.extend(self.evaluate(index, group, &none, false, &mut metrics, &mut top));
        }
        self.finish(group, passed, metrics, top)
    }

    fn finish(
        &mut self,
        group: &TaskGroup,
        passed: Vec<Candidate>,
        mut metrics: AllocMetric,
        top: TopScores,
    ) -> (Option<Chosen>, AllocMetric) {
        let top = top.into_vec();
        if !top.is_empty() {
            metrics.score_meta_data = Some(top);
        }
        // Highest score; ties keep the first seen.
        let best = passed
            .into_iter()
            .reduce(|best, next| if next.score > best.score { next } else { best });
        let Some(best) = best else {
            return (None, metrics);
        };
        let node = self.nodes[best.node].clone();
        let resources = build_resources(
            group,
            &node,
            &best.cores,
            best.ports,
            self.options.memory_oversubscription,
        );
        let node_state = Self::node_state(
            &mut self.node_states,
            self.state,
            &self.stopped,
            &self.job,
            &node,
        );
        node_state.usage.commit(&resources);
        *node_state.job_groups.entry(group.name.clone()).or_insert(0) += 1;
        self.count_placement(&group.name, &node, 1);
        let chosen = Chosen {
            node,
            resources,
            score: best.score,
        };
        (Some(chosen), metrics)
    }
}

fn cpu_per_core(node: &Node) -> i64 {
    node.node_resources
        .as_ref()
        .filter(|r| r.cpu.total_cpu_cores > 0)
        .map_or(0, |r| (r.cpu.cpu_shares / r.cpu.total_cpu_cores) as i64)
}

fn task_cpu(task_cpu: i64, task_cores: i64, node: &Node) -> i64 {
    if task_cores > 0 {
        task_cores * cpu_per_core(node)
    } else {
        task_cpu
    }
}

fn ask_for(group: &TaskGroup, node: &Node, cores: &[u16], ports: &[AllocatedPortMapping]) -> Ask {
    Ask {
        cpu: group
            .tasks
            .iter()
            .map(|t| task_cpu(t.resources.cpu, t.resources.cores, node))
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
                    cpu_shares: task_cpu(r.cpu, r.cores, node),
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
