//! The placement stack: shuffled nodes → feasibility → distinct_hosts →
//! distinct_property → fit → scores → limit → best (Nomad's `GenericStack`;
//! the system stack is [`Stack::select_node`]). With preemption enabled
//! for the job's type, a node that does not fit may evict lower-priority
//! allocations ([`fitting`]).

use std::collections::{BTreeMap, HashSet};

use crate::rng::FxHashMap as HashMap;
use std::sync::Arc;

use caravan_api_types::alloc::{AllocatedPortMapping, AllocatedResources, Allocation};
use caravan_api_types::eval::AllocMetric;
use caravan_api_types::job::{Affinity, Job, Spread, TaskGroup, JOB_TYPE_BATCH};
use caravan_api_types::node::Node;

use crate::feasible::constraint::RegexCache;
use crate::feasible::{
    in_datacenters, in_pool, node_ready, Feasibility, REASON_CLASS_INELIGIBLE,
    REASON_DISTINCT_HOSTS,
};
use crate::fit::NodeUsage;
use crate::metrics::{exhaust_node, filter_node, ScoreRecord, TopScores};
use crate::preempt;
use crate::rank::spread::{spread_boost, PropertyCounts, SpreadScore};
use crate::rank::{self, Algorithm};
use crate::rng::SplitMix64;
use crate::state::StateView;
use counts::{group_position, GroupCounts};
use fitting::{fit_plain, Evictor, Family};
pub use resources::build_resources;

mod counts;
mod fitting;
mod resources;
mod stops;
mod walk;

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
    job_groups: GroupCounts,
}

/// A node that passed, and what it would give.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub node: Arc<Node>,
    pub resources: AllocatedResources,
    pub score: f64,
    /// Allocations to evict for it (see [`crate::preempt::record`]).
    pub preempted: Vec<Arc<Allocation>>,
}

#[derive(Debug)]
struct Candidate {
    node: usize,
    ports: Vec<AllocatedPortMapping>,
    cores: Vec<u16>,
    score: f64,
    victims: Vec<Arc<Allocation>>,
}

/// One evaluation's placement stack for one job.
pub struct Stack<'s> {
    state: &'s dyn StateView,
    job: Arc<Job>,
    nodes: Vec<Arc<Node>>,
    position: usize,
    pub nodes_available: BTreeMap<String, i64>,
    feasibility: Feasibility,
    /// Per node index, built on first use.
    node_states: Vec<Option<NodeState>>,
    index_of: HashMap<String, usize>,
    stopped: HashSet<String>,
    spreads: HashMap<String, Vec<SpreadScore>>,
    distinct: HashMap<String, Vec<(PropertyCounts, u64, bool)>>,
    rng: SplitMix64,
    options: StackOptions,
    regexes: RegexCache,
    /// Each node's computed class as a small number ([`NO_CLASS`]: none).
    class_of: Vec<u32>,
    /// Per group (by position), per class: the feasibility verdict.
    class_memo: Vec<Vec<Option<bool>>>,
    /// The scheduler configuration lets this job's type preempt.
    preemption: bool,
    /// Evictions made so far, per victim job and group (`max_parallel`).
    preempted: HashMap<Family, u32>,
}

const NO_CLASS: u32 = u32::MAX;

/// One selection's group, with what is derived from it.
struct GroupPlan<'g> {
    group: &'g TaskGroup,
    position: usize,
    cacheable: bool,
    distinct_group: bool,
    /// The group asks for host volumes, checked per node.
    host_volumes: bool,
    has_ports: bool,
    cores_wanted: usize,
    penalty: &'g HashSet<String>,
    full_rank: bool,
    affinities: Vec<&'g Affinity>,
    /// A node that does not fit may evict allocations.
    evict: bool,
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
        let index_of = ready
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut classes: HashMap<&str, u32> = HashMap::default();
        let class_of = ready
            .iter()
            .map(|n| {
                if n.computed_class.is_empty() {
                    return NO_CLASS;
                }
                let next = classes.len() as u32;
                *classes.entry(n.computed_class.as_str()).or_insert(next)
            })
            .collect();
        let class_memo = job.task_groups.iter().map(|_| Vec::new()).collect();
        let preemption =
            preempt::enabled(&state.scheduler_config().preemption_config, &job.job_type);
        let mut stack = Self {
            preemption,
            preempted: HashMap::default(),
            class_of,
            class_memo,
            node_states: ready.iter().map(|_| None).collect(),
            index_of,
            state,
            feasibility: Feasibility::new(&job),
            job,
            nodes: ready,
            position: 0,
            nodes_available,
            stopped,
            spreads: HashMap::default(),
            distinct: HashMap::default(),
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
        slot: &'m mut Option<NodeState>,
        state: &dyn StateView,
        stopped: &HashSet<String>,
        job: &Job,
        node: &Node,
    ) -> &'m mut NodeState {
        slot.get_or_insert_with(|| Self::build_node_state(state, stopped, job, node))
    }

    fn build_node_state(
        state: &dyn StateView,
        stopped: &HashSet<String>,
        job: &Job,
        node: &Node,
    ) -> NodeState {
        {
            let allocs = state.allocs_by_node(&node.id);
            let live: Vec<&Allocation> = allocs
                .iter()
                .map(|a| a.as_ref())
                .filter(|a| !a.terminal() && !stopped.contains(&a.id))
                .collect();
            let mut job_groups = GroupCounts::default();
            for alloc in &live {
                if alloc.job_id == job.id && alloc.namespace == job.namespace {
                    job_groups.add(group_position(job, &alloc.task_group), 1);
                }
            }
            NodeState {
                usage: NodeUsage::new(node, live.iter().copied()),
                job_groups,
            }
        }
    }

    /// Whether `node` passes the group's feasibility checks (no metrics).
    pub fn is_feasible(&mut self, group: &str, node: &Node) -> bool {
        let mut scratch = AllocMetric::default();
        self.feasibility.check(group, node, &mut scratch)
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

    /// What one selection for `group` needs, worked out once rather than
    /// per node.
    fn group_plan<'g>(
        &self,
        job: &'g Job,
        group: &'g TaskGroup,
        penalty: &'g HashSet<String>,
        full_rank: bool,
        evict: bool,
    ) -> GroupPlan<'g> {
        let position = job
            .task_groups
            .iter()
            .position(|g| g.name == group.name)
            .unwrap_or(0);
        let checks = self.feasibility.group(&group.name);
        GroupPlan {
            group,
            position,
            cacheable: checks.is_some_and(|g| !g.escaped) && !self.feasibility.job_escaped(),
            distinct_group: checks.is_some_and(|g| g.distinct_hosts),
            host_volumes: checks.is_some_and(|g| !g.host_volumes.is_empty()),
            has_ports: group
                .networks
                .iter()
                .flatten()
                .any(|n| n.ports().next().is_some()),
            cores_wanted: group
                .tasks
                .iter()
                .map(|t| t.resources.cores.max(0) as usize)
                .sum(),
            penalty,
            full_rank,
            affinities: if full_rank {
                rank::affinities(job, group)
            } else {
                Vec::new()
            },
            evict,
        }
    }

    /// Checks and scores node `index`. The hot path reads only this
    /// stack's own compact per-node data, not the node, once the node's
    /// class is known (nodes are scattered in memory; at 10,000 nodes the
    /// cache misses were most of the cost).
    fn evaluate(
        &mut self,
        index: usize,
        plan: &GroupPlan<'_>,
        metrics: &mut AllocMetric,
        top: &mut TopScores,
    ) -> Option<Candidate> {
        let Self {
            state,
            job,
            nodes,
            feasibility,
            node_states,
            stopped,
            distinct,
            spreads,
            rng,
            options,
            regexes,
            class_of,
            class_memo,
            preempted,
            ..
        } = self;
        let node: &Node = &nodes[index];
        let group = plan.group;
        metrics.nodes_evaluated += 1;
        let class = class_of[index];
        let memo = if plan.cacheable && class != NO_CLASS {
            class_memo[plan.position]
                .get(class as usize)
                .copied()
                .flatten()
        } else {
            None
        };
        match memo {
            Some(false) => {
                filter_node(metrics, node, REASON_CLASS_INELIGIBLE);
                return None;
            }
            Some(true) => {}
            None => {
                let ok = feasibility.check_class(&group.name, node, metrics);
                if plan.cacheable && class != NO_CLASS {
                    let memo = &mut class_memo[plan.position];
                    if memo.len() <= class as usize {
                        memo.resize(class as usize + 1, None);
                    }
                    memo[class as usize] = Some(ok);
                }
                if !ok {
                    return None;
                }
            }
        }
        // Not part of the class memo: host volumes are the node's own.
        if plan.host_volumes && !feasibility.available(&group.name, node, metrics) {
            return None;
        }
        let node_state = Self::node_state(&mut node_states[index], *state, stopped, job, node);
        let on_node_group = node_state.job_groups.get(Some(plan.position));
        let on_node_job = node_state.job_groups.total;
        if (feasibility.job_distinct_hosts && on_node_job > 0)
            || (plan.distinct_group && on_node_group > 0)
        {
            filter_node(metrics, node, REASON_DISTINCT_HOSTS);
            return None;
        }
        for (counts, limit, _) in distinct.get(&group.name).into_iter().flatten() {
            let Some(value) = counts.value_of(node) else {
                let reason = format!("missing property \"{}\"", counts.property);
                filter_node(metrics, node, &reason);
                return None;
            };
            let used = counts.get(&value);
            if used >= *limit {
                let reason = format!(
                    "distinct_property: {}={} used by {} allocs",
                    counts.property, value, used
                );
                filter_node(metrics, node, &reason);
                return None;
            }
        }
        let fitted = match fit_plain(&mut node_state.usage, node, plan, rng) {
            Ok(fitted) => fitted,
            Err(exhausted) => {
                let evicted = plan.evict.then(|| {
                    let evictor = Evictor {
                        state: *state,
                        job,
                        stopped,
                        preempted,
                    };
                    evictor.fit(&node_state.usage, node, plan, rng)
                });
                match evicted.flatten() {
                    Some(fitted) => fitted,
                    None => {
                        exhaust_node(metrics, node, &exhausted.to_string());
                        return None;
                    }
                }
            }
        };
        // What binpack sees is the node after the evictions.
        let (free_cpu, free_mem) = node_state.usage.free_fractions(
            fitted.ask.cpu - fitted.freed.cpu,
            fitted.ask.memory_mb - fitted.freed.memory_mb,
        );
        let fit = options.algorithm.fit(free_cpu, free_mem) / rank::MAX_FIT;
        let mut record = ScoreRecord::new(index);
        record.push(rank::SCORER_BINPACK, fit);
        let mut sum = fit;
        let mut n = 1.0;
        if plan.full_rank {
            if let Some(value) = rank::anti_affinity(on_node_group, group.count) {
                record.push(rank::SCORER_ANTI_AFFINITY, value);
                sum += value;
                n += 1.0;
            }
            let penalized = !plan.penalty.is_empty() && plan.penalty.contains(&node.id);
            record.push(
                rank::SCORER_RESCHEDULE_PENALTY,
                if penalized { -1.0 } else { 0.0 },
            );
            if penalized {
                sum -= 1.0;
                n += 1.0;
            }
            if !plan.affinities.is_empty() {
                let value = rank::affinity_score(&plan.affinities, node, regexes);
                record.push(rank::SCORER_AFFINITY, value);
                sum += value;
                n += 1.0;
            }
            if let Some(spreads) = spreads.get(&group.name) {
                let value = spread_boost(spreads, node);
                if value != 0.0 {
                    record.push(rank::SCORER_SPREAD, value);
                    sum += value;
                    n += 1.0;
                }
            }
        }
        if !fitted.victims.is_empty() {
            let value = preempt::score(fitted.net_priority);
            record.push(rank::SCORER_PREEMPTION, value);
            sum += value;
            n += 1.0;
        }
        let score = sum / n;
        record.norm = score;
        top.offer(record);
        Some(Candidate {
            node: index,
            ports: fitted.ports,
            cores: fitted.cores,
            score,
            victims: fitted.victims,
        })
    }
}
