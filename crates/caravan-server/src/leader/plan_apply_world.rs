//! The plan applier's test bench: a state store written the way the FSM
//! writes it, evaluations run to their end the way `scheduling::process`
//! runs them, and an independent count of what each node holds (sums and
//! ports, not the scheduler's fit code) to judge every check and commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use caravan_api_types::alloc::{AllocatedResources, Allocation, ALLOC_CLIENT_FAILED};
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_FAILED, EVAL_STATUS_PENDING, TRIGGER_JOB_REGISTER,
};
use caravan_api_types::job::Job;
use caravan_api_types::node::{
    Node, NodeReservedCpuResources, NodeReservedNetworkResources, NodeReservedResources,
};
use caravan_scheduler::harness;
use caravan_scheduler::{Context, Plan, SchedulerResult, SequentialIds};
use caravan_state::job_commands::{AllocClientUpdate, AllocsClientUpdate, JobRegister};
use caravan_state::{new_eval, Command, State, StateStore};

use super::super::{check, command};
use crate::leader::scheduling::{SnapshotView, MAX_ATTEMPTS};

pub(super) const NAMESPACE: &str = "default";
/// Static ports jobs and random plans ask for; nodes may reserve 8081.
pub(super) const PORTS: [u16; 3] = [8080, 8081, 8082];
pub(super) const RESERVED_PORT: u16 = 8081;
pub(super) const T0: i64 = 1_700_000_000_000_000_000;
pub(super) const SECOND: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(super) struct NodeSpec {
    pub(super) cpu: i64,
    pub(super) reserved_cpu: i64,
    pub(super) memory_mb: i64,
    pub(super) disk_mb: i64,
    pub(super) reserves_port: bool,
}

impl NodeSpec {
    pub(super) fn node(&self, id: &str) -> Node {
        let mut node = harness::node(id, "dc1", self.cpu as u64, self.memory_mb as u64);
        if let Some(resources) = node.node_resources.as_mut() {
            resources.disk.disk_mb = self.disk_mb as u64;
        }
        node.reserved_resources = Some(NodeReservedResources {
            cpu: NodeReservedCpuResources {
                cpu_shares: self.reserved_cpu as u64,
                ..NodeReservedCpuResources::default()
            },
            networks: NodeReservedNetworkResources {
                reserved_host_ports: if self.reserves_port {
                    RESERVED_PORT.to_string()
                } else {
                    String::new()
                },
            },
            ..NodeReservedResources::default()
        });
        node
    }
}

#[derive(Debug, Clone)]
pub(super) struct JobSpec {
    pub(super) count: i64,
    pub(super) cpu: i64,
    pub(super) memory_mb: i64,
    pub(super) disk_mb: i64,
    /// `None`: no port; `Some(0)`: one dynamic port; else a static port.
    pub(super) port: Option<u16>,
}

impl JobSpec {
    pub(super) fn job(&self, id: &str) -> Job {
        let mut job = harness::job(id, "service", self.count);
        job.namespace = NAMESPACE.into();
        let group = &mut job.task_groups[0];
        group.ephemeral_disk.size_mb = self.disk_mb;
        group.tasks[0].resources.cpu = self.cpu;
        group.tasks[0].resources.memory_mb = self.memory_mb;
        group.networks = match self.port {
            None => None,
            Some(0) => Some(vec![harness::ports(&[], &["dyn"])]),
            Some(port) => Some(vec![harness::ports(&[("fixed", i32::from(port))], &[])]),
        };
        job
    }
}

/// The store, the next Raft index, and what each node can hold.
pub(super) struct World {
    pub(super) store: StateStore,
    pub(super) index: u64,
    pub(super) specs: BTreeMap<String, NodeSpec>,
    pub(super) ids: SequentialIds,
    /// Whether a plan made on the very state it is checked against must be
    /// accepted (the scheduler and the applier agree).
    pub(super) agree: bool,
}

impl World {
    /// A store holding one ready node per spec.
    pub(super) fn new(nodes: &[NodeSpec]) -> Self {
        let mut world = World {
            store: StateStore::new(),
            index: 0,
            specs: BTreeMap::new(),
            ids: SequentialIds::default(),
            agree: true,
        };
        let at = chrono::DateTime::from_timestamp_nanos(T0);
        for (n, spec) in nodes.iter().enumerate() {
            let id = format!("00000000-0000-4000-9000-{n:012}");
            world.apply(&Command::NodeRegister {
                node: Box::new(spec.node(&id)),
                now: at,
            });
            world.specs.insert(id, spec.clone());
        }
        world
    }

    /// The stored version of job `id`, to register again.
    pub(super) fn job(&self, id: &str) -> Job {
        let state = self.store.snapshot();
        state.job(NAMESPACE, id).expect("job").as_ref().clone()
    }

    /// Reports every live allocation of job `id` failed at `at`; returns
    /// one of them.
    pub(super) fn fail_all(&mut self, id: &str, at: i64) -> Arc<Allocation> {
        let state = self.store.snapshot();
        let live: Vec<Arc<Allocation>> = state
            .allocs_by_job(NAMESPACE, id)
            .filter(|alloc| !alloc.terminal())
            .cloned()
            .collect();
        let updates = live
            .iter()
            .map(|alloc| AllocClientUpdate {
                id: alloc.id.clone(),
                client_status: ALLOC_CLIENT_FAILED.into(),
                client_description: String::new(),
                task_states: None,
                deployment_status: None,
            })
            .collect();
        self.apply(&Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
            updates,
            evals: Vec::new(),
            now: at,
        })));
        self.assert_no_overcommit();
        Arc::clone(live.first().expect("a live allocation"))
    }

    pub(super) fn apply(&mut self, command: &Command) {
        self.index += 1;
        self.store.apply(self.index, command);
    }

    /// Registers `job` with a pending evaluation; returns the eval's ID.
    pub(super) fn register(&mut self, job: Job, now: i64) -> String {
        let eval_id = format!("eval-{}-{}", job.id, self.index + 1);
        let eval = new_eval(&job, TRIGGER_JOB_REGISTER, eval_id.clone(), now);
        self.apply(&Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: Some(eval),
            enforce_index: None,
            namespace_checked: false,
        })));
        eval_id
    }

    pub(super) fn schedule(
        &mut self,
        state: &Arc<State>,
        eval_id: &str,
        now: i64,
    ) -> SchedulerResult {
        let eval = state
            .eval(eval_id)
            .expect("the eval is stored")
            .as_ref()
            .clone();
        let view = SnapshotView(Arc::clone(state));
        let mut ctx = Context {
            eval: &eval,
            now,
            ids: &mut self.ids,
        };
        caravan_scheduler::schedule(&view, &mut ctx).expect("a service eval schedules")
    }

    /// Checks `plan` against the latest state, asserts the refusals are
    /// exactly the overcommitting nodes, commits what fits with `evals`
    /// (as `process` does) and asserts no node is overcommitted after.
    /// Returns whether every node was accepted.
    pub(super) fn commit(
        &mut self,
        plan: &Plan,
        now: i64,
        evals: impl FnOnce(bool) -> Vec<Evaluation>,
    ) -> bool {
        let latest = self.store.snapshot();
        let checked = check(&latest, plan, now);
        let refused: BTreeSet<String> = checked.refused_nodes.iter().cloned().collect();
        let expected = self.overcommitting_nodes(&latest, plan);
        assert_eq!(
            refused,
            expected,
            "the applier refused {refused:?}, but exactly {expected:?} would overcommit;\n\
             plan:\n{}\nnodes before it:\n{}",
            describe_plan(plan),
            self.describe_nodes(&latest)
        );
        let complete = refused.is_empty();
        let evals = evals(complete);
        let nothing = checked.result.allocs.is_empty() && checked.result.stops.is_empty();
        if !(nothing && evals.is_empty()) {
            self.apply(&command(checked.result, evals));
        }
        self.assert_no_overcommit();
        complete
    }

    /// Runs one evaluation to its end as `scheduling::process` does,
    /// starting from `first` (planned on an older snapshot, as a worker
    /// racing another would), planning again on the latest state when a
    /// node was refused.
    pub(super) fn process(&mut self, eval_id: &str, mut first: Option<SchedulerResult>, now: i64) {
        for attempt in 1..=MAX_ATTEMPTS {
            let latest = self.store.snapshot();
            if latest
                .eval(eval_id)
                .is_none_or(|stored| stored.status != EVAL_STATUS_PENDING)
            {
                return;
            }
            let (result, on_latest) = match first.take() {
                Some(result) => (result, false),
                None => (self.schedule(&latest, eval_id, now), true),
            };
            let eval = latest.eval(eval_id).expect("stored").as_ref().clone();
            let complete = self.commit(&result.plan, now, |complete| {
                if complete {
                    let mut evals = vec![result.eval.clone()];
                    evals.extend(result.blocked_evals.iter().cloned());
                    evals.extend(result.followup_evals.iter().cloned());
                    evals
                } else if attempt == MAX_ATTEMPTS {
                    vec![Evaluation {
                        status: EVAL_STATUS_FAILED.into(),
                        ..eval
                    }]
                } else {
                    Vec::new()
                }
            });
            assert!(
                complete || !on_latest || !self.agree,
                "a plan made on the state it was checked against was refused \
                 (the scheduler and the applier disagree):\n{}\nnodes:\n{}",
                describe_plan(&result.plan),
                self.describe_nodes(&latest)
            );
            if complete {
                return;
            }
        }
    }

    /// Nodes of `plan` that are missing, or whose live allocations after
    /// the plan (its stops and replacements taken out, its placements
    /// added) would not fit: counted here, independently of the fit code.
    /// A stop whose replacement is on a refused node does not happen, so
    /// the count is made again until the refusals settle.
    pub(super) fn overcommitting_nodes(&self, state: &State, plan: &Plan) -> BTreeSet<String> {
        let mut refused = BTreeSet::new();
        loop {
            let waiting: BTreeSet<&str> = refused
                .iter()
                .filter_map(|node_id: &String| plan.node_allocation.get(node_id))
                .flatten()
                .map(|alloc| alloc.id.as_str())
                .collect();
            let stopping: BTreeSet<&str> = plan
                .stops()
                .filter(|alloc| !waiting.contains(alloc.next_allocation.as_str()))
                .map(|alloc| alloc.id.as_str())
                .collect();
            let now = self.overcommitting_once(state, plan, &stopping);
            if now == refused {
                return refused;
            }
            refused = now;
        }
    }

    fn overcommitting_once(
        &self,
        state: &State,
        plan: &Plan,
        stopping: &BTreeSet<&str>,
    ) -> BTreeSet<String> {
        let mut refused = BTreeSet::new();
        for (node_id, placed) in &plan.node_allocation {
            let (Some(spec), Some(_)) = (self.specs.get(node_id), state.node(node_id)) else {
                refused.insert(node_id.clone());
                continue;
            };
            let placing: BTreeSet<&str> = placed.iter().map(|alloc| alloc.id.as_str()).collect();
            let mut after: Vec<&Allocation> = state
                .allocs_by_node(node_id)
                .filter(|alloc| !alloc.terminal())
                .filter(|alloc| !stopping.contains(alloc.id.as_str()))
                .filter(|alloc| !placing.contains(alloc.id.as_str()))
                .map(|alloc| alloc.as_ref())
                .collect();
            // A finished allocation holds nothing, whatever the plan
            // updates on it (a follow-up eval, a reschedule tracker).
            after.extend(placed.iter().filter(|alloc| !alloc.terminal()));
            if overcommit(spec, &after).is_some() {
                refused.insert(node_id.clone());
            }
        }
        refused
    }

    pub(super) fn assert_no_overcommit(&self) {
        let state = self.store.snapshot();
        for (node_id, spec) in &self.specs {
            let live: Vec<&Allocation> = state
                .allocs_by_node(node_id)
                .filter(|alloc| !alloc.terminal())
                .map(|alloc| alloc.as_ref())
                .collect();
            if let Some(problem) = overcommit(spec, &live) {
                panic!(
                    "node {node_id} is overcommitted: {problem}\n{}",
                    self.describe_nodes(&state)
                );
            }
        }
    }
}

/// One line per allocation: ID, node, statuses, CPU/memory/disk, ports.
pub(super) fn describe_alloc(alloc: &Allocation) -> String {
    let (cpu, memory, disk, ports) = alloc
        .allocated_resources
        .as_ref()
        .map(|r| {
            let (c, m, d) = r.totals();
            (c, m, d, ports_of(r))
        })
        .unwrap_or_default();
    format!(
        "  {} {} on {} desired={} client={} cpu={cpu} mem={memory} disk={disk} ports={ports:?}",
        alloc.id, alloc.name, alloc.node_id, alloc.desired_status, alloc.client_status
    )
}

pub(super) fn describe_plan(plan: &Plan) -> String {
    let stops = plan.stops().map(|a| format!("stop{}", describe_alloc(a)));
    let placed = plan
        .placements()
        .map(|a| format!("place{}", describe_alloc(a)));
    stops.chain(placed).collect::<Vec<_>>().join("\n")
}

impl World {
    pub(super) fn describe_nodes(&self, state: &State) -> String {
        let mut lines = Vec::new();
        for (node_id, spec) in &self.specs {
            lines.push(format!("node {node_id}: {spec:?}"));
            lines.extend(state.allocs_by_node(node_id).map(|a| describe_alloc(a)));
        }
        lines.join("\n")
    }
}

/// The `(host IP, port)`s an allocation holds, read from its resources.
pub(super) fn ports_of(resources: &AllocatedResources) -> BTreeSet<(String, u16)> {
    let mut ports = BTreeSet::new();
    let mut add = |ip: &str, value: i32| {
        if let Ok(port) = u16::try_from(value) {
            if port != 0 {
                ports.insert((ip.to_string(), port));
            }
        }
    };
    for mapping in resources.shared.ports.iter().flatten() {
        add(&mapping.host_ip, mapping.value);
    }
    let networks = resources.shared.networks.iter().flatten().chain(
        resources
            .tasks
            .values()
            .flat_map(|t| t.networks.iter().flatten()),
    );
    for network in networks {
        let ports = network.reserved_ports.iter().flatten();
        for port in ports.chain(network.dynamic_ports.iter().flatten()) {
            add(&network.ip, port.value);
        }
    }
    ports
}

/// What is wrong if `allocs` all live on a node of `spec`.
pub(super) fn overcommit(spec: &NodeSpec, allocs: &[&Allocation]) -> Option<String> {
    let (mut cpu, mut memory, mut disk) = (0, 0, 0);
    let mut ports: BTreeSet<(String, u16)> = BTreeSet::new();
    for resources in allocs.iter().filter_map(|a| a.allocated_resources.as_ref()) {
        let (c, m, d) = resources.totals();
        (cpu, memory, disk) = (cpu + c, memory + m, disk + d);
        for (ip, port) in ports_of(resources) {
            if spec.reserves_port && port == RESERVED_PORT {
                return Some(format!("reserved port {port} taken"));
            }
            if !ports.insert((ip.clone(), port)) {
                return Some(format!("port {ip}:{port} taken twice"));
            }
        }
    }
    if cpu > spec.cpu - spec.reserved_cpu {
        return Some(format!("cpu {cpu} > {}", spec.cpu - spec.reserved_cpu));
    }
    if memory > spec.memory_mb {
        return Some(format!("memory {memory} > {}", spec.memory_mb));
    }
    (disk > spec.disk_mb).then(|| format!("disk {disk} > {}", spec.disk_mb))
}
