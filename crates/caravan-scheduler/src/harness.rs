//! An in-memory [`StateView`] and builders, for this crate's tests and
//! benchmarks and for the server's tests. [`MemoryState::apply`] commits a
//! plan the way the plan applier must: every node re-checked with
//! [`crate::fit`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::Evaluation;
use caravan_api_types::job::{Job, NetworkResource, Port, Resources, Task, TaskGroup};
use caravan_api_types::node::{
    DriverInfo, Node, NodeCpuResources, NodeDiskResources, NodeMemoryResources, NodeResources,
    ELIGIBLE, NODE_STATUS_READY,
};
use caravan_api_types::operator::SchedulerConfiguration;

use crate::fit::{Ask, Exhausted, NodeUsage};
use crate::ids::{IdGenerator, SequentialIds};
use crate::plan::{Plan, SchedulerResult};
use crate::rng::fnv1a;
use crate::state::StateView;

/// Nomad's computed class, `v1:<hash>` of what nodes of one class share:
/// datacenter, attributes and meta (`unique.*` keys left out), class, pool.
pub fn computed_class(node: &Node) -> String {
    let mut text = String::new();
    let mut push = |part: &str| {
        text.push_str(part);
        text.push('\0');
    };
    push(&node.datacenter);
    push(&node.node_class);
    push(&node.node_pool);
    for (key, value) in node
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with("unique."))
    {
        push(key);
        push(value);
    }
    push("meta");
    for (key, value) in node.meta.iter().filter(|(k, _)| !k.starts_with("unique.")) {
        push(key);
        push(value);
    }
    for (name, driver) in &node.drivers {
        push(name);
        push(if driver.detected && driver.healthy {
            "1"
        } else {
            "0"
        });
    }
    format!("v1:{}", fnv1a(text.as_bytes()))
}

/// A ready, eligible node in `dc` with the `raw_exec` and `exec` drivers.
pub fn node(id: &str, dc: &str, cpu: u64, memory_mb: u64) -> Node {
    let healthy = DriverInfo {
        detected: true,
        healthy: true,
        ..DriverInfo::default()
    };
    let mut node = Node {
        id: id.to_string(),
        name: format!("node-{id}"),
        datacenter: dc.to_string(),
        node_pool: "default".to_string(),
        status: NODE_STATUS_READY.to_string(),
        scheduling_eligibility: ELIGIBLE.to_string(),
        node_resources: Some(NodeResources {
            cpu: NodeCpuResources {
                cpu_shares: cpu,
                total_cpu_cores: 4,
                reservable_cpu_cores: vec![0, 1, 2, 3],
            },
            memory: NodeMemoryResources { memory_mb },
            disk: NodeDiskResources { disk_mb: 100_000 },
            ..NodeResources::default()
        }),
        drivers: [
            ("raw_exec".to_string(), healthy.clone()),
            ("exec".to_string(), healthy),
        ]
        .into_iter()
        .collect(),
        ..Node::default()
    };
    node.attributes.insert("kernel.name".into(), "linux".into());
    node.attributes.insert(
        "unique.network.ip-address".into(),
        format!("10.0.0.{}", fnv1a(id.as_bytes()) % 250),
    );
    node.computed_class = computed_class(&node);
    node
}

/// A one-group, one-task job (`raw_exec`, 100 MHz, 256 MB, 10 MB disk).
pub fn job(id: &str, job_type: &str, count: i64) -> Job {
    let task = Task {
        name: "task".to_string(),
        driver: "raw_exec".to_string(),
        resources: Resources {
            cpu: 100,
            memory_mb: 256,
            ..Resources::default()
        },
        ..Task::default()
    };
    let mut group = TaskGroup {
        name: "group".to_string(),
        count,
        tasks: vec![task],
        ..TaskGroup::default()
    };
    group.ephemeral_disk.size_mb = 10;
    group.reschedule_policy = match job_type {
        "service" => Some(caravan_api_types::job::ReschedulePolicy::default_service()),
        "batch" => Some(caravan_api_types::job::ReschedulePolicy::default_batch()),
        _ => None,
    };
    Job {
        id: id.to_string(),
        name: id.to_string(),
        job_type: job_type.to_string(),
        datacenters: Some(vec!["*".to_string()]),
        task_groups: vec![group],
        job_modify_index: 1,
        ..Job::default()
    }
}

/// A group network with these static and dynamic port labels.
pub fn ports(static_ports: &[(&str, i32)], dynamic: &[&str]) -> NetworkResource {
    NetworkResource {
        mode: "host".to_string(),
        reserved_ports: Some(
            static_ports
                .iter()
                .map(|(label, value)| Port {
                    label: label.to_string(),
                    value: *value,
                    ..Port::default()
                })
                .collect(),
        ),
        dynamic_ports: Some(
            dynamic
                .iter()
                .map(|label| Port {
                    label: label.to_string(),
                    ..Port::default()
                })
                .collect(),
        ),
        ..NetworkResource::default()
    }
}

/// A node that rejected a plan's allocations, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub node_id: String,
    pub reason: Exhausted,
}

/// The cluster state as plain maps.
#[derive(Debug, Clone)]
pub struct MemoryState {
    pub index: u64,
    pub nodes: BTreeMap<String, Arc<Node>>,
    pub allocs: BTreeMap<String, Arc<Allocation>>,
    pub jobs: BTreeMap<(String, String), Arc<Job>>,
    pub evals: BTreeMap<String, Evaluation>,
    pub config: SchedulerConfiguration,
    by_node: HashMap<String, Vec<String>>,
    by_job: HashMap<(String, String), Vec<String>>,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self {
            index: 1,
            nodes: BTreeMap::new(),
            allocs: BTreeMap::new(),
            jobs: BTreeMap::new(),
            evals: BTreeMap::new(),
            config: SchedulerConfiguration::initial(),
            by_node: HashMap::new(),
            by_job: HashMap::new(),
        }
    }
}

impl MemoryState {
    pub fn upsert_node(&mut self, mut node: Node) {
        self.index += 1;
        node.computed_class = computed_class(&node);
        node.modify_index = self.index;
        self.nodes.insert(node.id.clone(), Arc::new(node));
    }

    /// Stores a job (bumping `JobModifyIndex` when its spec changed) and
    /// returns its registration eval.
    pub fn upsert_job(&mut self, mut job: Job) -> Evaluation {
        self.index += 1;
        let key = (job.namespace.clone(), job.id.clone());
        match self.jobs.get(&key) {
            Some(old) if !old.spec_changed(&job) => job.job_modify_index = old.job_modify_index,
            Some(old) => {
                job.version = old.version + 1;
                job.job_modify_index = self.index;
            }
            None => job.job_modify_index = self.index,
        }
        let eval = eval_for(&job, "job-register");
        self.jobs.insert(key, Arc::new(job));
        eval
    }

    pub fn upsert_alloc(&mut self, alloc: Allocation) {
        self.index += 1;
        let mut alloc = alloc;
        if alloc.create_index == 0 {
            alloc.create_index = self.index;
        }
        alloc.modify_index = self.index;
        let id = alloc.id.clone();
        if !self.allocs.contains_key(&id) {
            self.by_node
                .entry(alloc.node_id.clone())
                .or_default()
                .push(id.clone());
            self.by_job
                .entry((alloc.namespace.clone(), alloc.job_id.clone()))
                .or_default()
                .push(id.clone());
        }
        self.allocs.insert(id, Arc::new(alloc));
    }

    /// Changes a stored allocation (a client update, in tests).
    pub fn update_alloc(&mut self, id: &str, change: impl FnOnce(&mut Allocation)) {
        if let Some(alloc) = self.allocs.get(id) {
            let mut alloc = (**alloc).clone();
            change(&mut alloc);
            self.upsert_alloc(alloc);
        }
    }

    pub fn update_node(&mut self, id: &str, change: impl FnOnce(&mut Node)) {
        if let Some(node) = self.nodes.get(id) {
            let mut node = (**node).clone();
            change(&mut node);
            self.upsert_node(node);
        }
    }

    /// Commits a plan as the plan applier does: each node with new
    /// allocations is re-checked with the shared fit code; a node that
    /// does not fit is left out (a partial commit).
    pub fn apply(&mut self, plan: &Plan) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        for stops in plan.node_update.values() {
            for stop in stops {
                // An eviction of an allocation that ended meanwhile is
                // dropped, as the plan applier drops it.
                let ended = self.allocs.get(&stop.id).is_none_or(|a| a.terminal());
                if crate::preempt::is_preemption(stop) && ended {
                    continue;
                }
                self.upsert_alloc(stop.clone());
            }
        }
        for (node_id, allocs) in &plan.node_allocation {
            let Some(node) = self.nodes.get(node_id).cloned() else {
                continue;
            };
            let updating: Vec<&str> = allocs.iter().map(|a| a.id.as_str()).collect();
            let existing: Vec<Arc<Allocation>> = self
                .allocs_by_node(node_id)
                .into_iter()
                .filter(|a| !a.terminal() && !updating.contains(&a.id.as_str()))
                .collect();
            let mut usage = NodeUsage::new(&node, existing.iter().map(|a| a.as_ref()));
            let mut verdict = Ok(());
            for alloc in allocs.iter().filter(|a| !a.terminal()) {
                let Some(resources) = &alloc.allocated_resources else {
                    continue;
                };
                if let Err(reason) = usage.check(&node, &Ask::of(resources)) {
                    verdict = Err(reason);
                    break;
                }
                usage.commit(resources);
            }
            match verdict {
                Ok(()) => {
                    for alloc in allocs {
                        self.upsert_alloc(alloc.clone());
                    }
                }
                Err(reason) => rejected.push(Rejected {
                    node_id: node_id.clone(),
                    reason,
                }),
            }
        }
        rejected
    }

    /// Runs the scheduler for `eval` at time `now`, with sequential IDs.
    pub fn schedule(
        &self,
        eval: &Evaluation,
        now: i64,
        ids: &mut dyn IdGenerator,
    ) -> SchedulerResult {
        let mut ctx = crate::Context { eval, now, ids };
        crate::schedule(self, &mut ctx).unwrap_or_default()
    }

    /// Schedules and applies, storing the evals it creates.
    pub fn run(&mut self, eval: &Evaluation, now: i64, ids: &mut SequentialIds) -> SchedulerResult {
        let result = self.schedule(eval, now, ids);
        self.apply(&result.plan);
        for created in result.blocked_evals.iter().chain(&result.followup_evals) {
            self.evals.insert(created.id.clone(), created.clone());
        }
        self.evals
            .insert(result.eval.id.clone(), result.eval.clone());
        result
    }

    pub fn live_allocs(&self, job_id: &str) -> Vec<Arc<Allocation>> {
        self.allocs
            .values()
            .filter(|a| a.job_id == job_id && !a.terminal())
            .cloned()
            .collect()
    }
}

/// A pending eval for `job`.
pub fn eval_for(job: &Job, trigger: &str) -> Evaluation {
    Evaluation {
        id: format!("eval-{}-{}", job.id, job.job_modify_index),
        namespace: job.namespace.clone(),
        priority: job.priority,
        eval_type: job.job_type.clone(),
        triggered_by: trigger.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: "pending".to_string(),
        ..Evaluation::default()
    }
}

impl StateView for MemoryState {
    fn index(&self) -> u64 {
        self.index
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.values().cloned().collect()
    }

    fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.by_node
            .get(node_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.by_job
            .get(&(namespace.to_string(), job_id.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .get(&(namespace.to_string(), id.to_string()))
            .cloned()
    }

    fn scheduler_config(&self) -> SchedulerConfiguration {
        self.config.clone()
    }
}
