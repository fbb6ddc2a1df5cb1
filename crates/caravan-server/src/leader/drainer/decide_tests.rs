//! The drainer's rules run against the real state machine, scheduler and
//! plan check: each step is one drainer pass, the evaluations it caused
//! run to their end, and a simulated client reporting what it was told.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::{
    AllocDeploymentStatus, Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_PENDING,
    ALLOC_CLIENT_RUNNING,
};
use caravan_api_types::eval::{EVAL_STATUS_BLOCKED, EVAL_STATUS_PENDING, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{Job, MigrateStrategy};
use caravan_api_types::node::{DrainSpec, DRAIN_STATUS_COMPLETE, INELIGIBLE};
use caravan_scheduler::{harness, Context, SequentialIds};
use caravan_state::job_commands::{AllocClientUpdate, AllocsClientUpdate, JobRegister};
use caravan_state::{new_eval, Command, State, StateStore};
use chrono::{DateTime, Utc};

use super::decide;
use crate::leader::drainer::commands;
use crate::leader::plan_apply::{check, command};
use crate::leader::scheduling::SnapshotView;

const NS: &str = "default";

struct Sim {
    store: StateStore,
    index: u64,
    ids: SequentialIds,
    now: DateTime<Utc>,
    /// Whether the simulated client reports its allocations healthy.
    healthy: bool,
}

impl Sim {
    fn new(nodes: &[&str]) -> Self {
        let mut sim = Sim {
            store: StateStore::new(),
            index: 0,
            ids: SequentialIds::default(),
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            healthy: true,
        };
        for node in nodes {
            sim.add_node(node);
        }
        sim
    }

    fn add_node(&mut self, id: &str) {
        let node = harness::node(id, "dc1", 4000, 8192);
        let now = self.now;
        self.apply(Command::NodeRegister {
            node: Box::new(node),
            now,
        });
    }

    fn apply(&mut self, command: Command) {
        self.index += 1;
        self.store.apply(self.index, &command);
    }

    fn state(&self) -> Arc<State> {
        self.store.snapshot()
    }

    fn register(&mut self, id: &str, job_type: &str, count: i64, max_parallel: i64) {
        let mut job: Job = harness::job(id, job_type, count);
        job.namespace = NS.into();
        job.priority = 50;
        job.task_groups[0].tasks[0].resources.cpu = 500;
        job.task_groups[0].tasks[0].resources.memory_mb = 256;
        if job_type == "service" {
            job.task_groups[0].migrate = Some(MigrateStrategy {
                max_parallel,
                ..MigrateStrategy::default()
            });
        }
        let now = self.nanos();
        let eval = new_eval(&job, TRIGGER_JOB_REGISTER, format!("eval-{id}"), now);
        self.apply(Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: Some(eval),
            enforce_index: None,
            namespace_checked: false,
        })));
        self.settle();
    }

    fn nanos(&self) -> i64 {
        self.now.timestamp_nanos_opt().unwrap()
    }

    /// Runs every pending evaluation (and, with `blocked`, the blocked
    /// ones) once, committing what the plan check accepts.
    fn run_evals(&mut self, blocked: bool) {
        let state = self.state();
        let evals: Vec<_> = state
            .evals()
            .filter(|e| {
                e.status == EVAL_STATUS_PENDING || (blocked && e.status == EVAL_STATUS_BLOCKED)
            })
            .map(|e| e.as_ref().clone())
            .collect();
        for eval in evals {
            let state = self.state();
            let view = SnapshotView(Arc::clone(&state));
            let now = self.nanos();
            let mut ctx = Context {
                eval: &eval,
                now,
                ids: &mut self.ids,
            };
            let result = caravan_scheduler::schedule(&view, &mut ctx).unwrap();
            let checked = check(&state, &result.plan, now);
            assert!(checked.refused_nodes.is_empty());
            let mut evals = vec![result.eval.clone()];
            evals.extend(result.blocked_evals.iter().cloned());
            self.apply(command(checked.result, evals));
        }
    }

    /// The client: starts what it was given (healthy at once if
    /// `self.healthy`), finishes what it was told to stop.
    fn client(&mut self) {
        let state = self.state();
        let mut updates = Vec::new();
        for alloc in state.allocs() {
            let (status, health) = if alloc.server_terminal() && !alloc.client_terminal() {
                (ALLOC_CLIENT_COMPLETE, None)
            } else if !alloc.server_terminal()
                && (alloc.client_status == ALLOC_CLIENT_PENDING
                    || (alloc.client_status == ALLOC_CLIENT_RUNNING
                        && alloc.deployment_status.is_none()
                        && self.healthy))
            {
                let health = self.healthy.then(|| AllocDeploymentStatus {
                    healthy: Some(true),
                    timestamp: Some(self.now),
                    ..AllocDeploymentStatus::default()
                });
                (ALLOC_CLIENT_RUNNING, health)
            } else {
                continue;
            };
            updates.push(AllocClientUpdate {
                id: alloc.id.clone(),
                client_status: status.into(),
                client_description: String::new(),
                task_states: None,
                deployment_status: health,
            });
        }
        if !updates.is_empty() {
            let now = self.nanos();
            self.apply(Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
                updates,
                evals: Vec::new(),
                now,
            })));
        }
    }

    fn settle(&mut self) {
        self.run_evals(false);
        self.client();
    }

    fn drain(&mut self, node: &str, deadline: i64, ignore_system: bool) {
        let now = self.now;
        self.apply(Command::NodeUpdateDrain {
            node_id: node.into(),
            spec: Some(DrainSpec {
                deadline,
                ignore_system_jobs: ignore_system,
            }),
            mark_eligible: false,
            meta: None,
            accessor: String::new(),
            now,
        });
    }

    /// One drainer pass, its writes committed.
    fn pass(&mut self) -> usize {
        let state = self.state();
        let mut n = 0;
        let mut new_id = || {
            n += 1;
            format!("drain-eval-{n}")
        };
        let decision = decide(&state, self.now, &Default::default(), &mut new_id);
        let marked = decision.marks.values().map(|m| m.transitions.len()).sum();
        for command in commands(decision, self.now) {
            self.apply(command);
        }
        marked
    }

    fn live_on(&self, node: &str) -> Vec<Arc<Allocation>> {
        self.state()
            .allocs_by_node(node)
            .filter(|a| !a.client_terminal())
            .cloned()
            .collect()
    }

    fn drain_complete(&self, node: &str) -> bool {
        let state = self.state();
        let node = state.node(node).unwrap();
        node.drain_strategy.is_none()
            && node
                .last_drain
                .as_ref()
                .is_some_and(|last| last.status == DRAIN_STATUS_COMPLETE)
    }
}

/// Allocations of `job` away from service: marked to migrate and not yet
/// finished, or placed and not yet healthy.
fn away(state: &State, job: &str) -> usize {
    state
        .allocs_by_job(NS, job)
        .filter(|a| {
            let marked = a.desired_transition.migrate == Some(true) && !a.client_terminal();
            let unproven = !a.terminal()
                && a.desired_transition.migrate != Some(true)
                && a.deployment_status.is_none();
            marked || unproven
        })
        .count()
}

#[test]
fn a_service_group_moves_max_parallel_at_a_time_and_completes_when_terminal() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 4, 1);
    assert_eq!(sim.live_on("node-a").len(), 4);
    sim.add_node("node-b");
    sim.drain("node-a", 0, false);
    sim.healthy = false; // replacements prove themselves one step late
    let mut steps = 0;
    while !sim.drain_complete("node-a") {
        steps += 1;
        assert!(steps < 40, "the drain never completed");
        let marked = sim.pass();
        assert!(marked <= 1, "{marked} marked in one pass");
        assert!(
            away(&sim.state(), "web") <= 1,
            "more than max_parallel away"
        );
        sim.settle();
        assert!(
            away(&sim.state(), "web") <= 1,
            "more than max_parallel away"
        );
        // Health arrives a step after the start.
        sim.healthy = true;
        sim.client();
        sim.healthy = false;
    }
    assert!(sim.live_on("node-a").is_empty());
    assert_eq!(sim.live_on("node-b").len(), 4);
    let state = sim.state();
    let node = state.node("node-a").unwrap();
    assert_eq!(node.scheduling_eligibility, INELIGIBLE);
    let last = node.events.last().unwrap();
    assert_eq!(last.message, "Node drain complete");
}

#[test]
fn nothing_more_moves_while_replacements_have_no_health() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 2, 1);
    sim.add_node("node-b");
    sim.drain("node-a", 0, false);
    sim.healthy = false;
    for _ in 0..5 {
        sim.pass();
        sim.settle();
    }
    let state = sim.state();
    let marked = state
        .allocs_by_job(NS, "web")
        .filter(|a| a.desired_transition.migrate == Some(true))
        .count();
    assert_eq!(marked, 1, "only the first batch moves before any health");
    assert!(!sim.drain_complete("node-a"));
}

#[test]
fn batch_work_runs_until_the_deadline_then_stops_without_replacement() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("job", "batch", 2, 1);
    sim.add_node("node-b");
    sim.drain("node-a", 60_000_000_000, false);
    for _ in 0..3 {
        assert_eq!(sim.pass(), 0);
        sim.settle();
    }
    assert_eq!(sim.live_on("node-a").len(), 2);
    assert!(!sim.drain_complete("node-a"));
    let state = sim.state();
    assert!(
        decide(&state, sim.now, &Default::default(), &mut || "x".into())
            .wake_at
            .is_some()
    );
    sim.now += chrono::Duration::seconds(61);
    assert_eq!(sim.pass(), 2);
    sim.settle();
    sim.pass();
    assert!(sim.drain_complete("node-a"));
    assert!(
        sim.live_on("node-b").is_empty(),
        "drained batch work is not replaced"
    );
    let state = sim.state();
    let events = state.node("node-a").unwrap().events.clone();
    let done = events.last().unwrap();
    assert_eq!(done.message, "Node drain complete");
    assert_eq!(
        done.details
            .as_ref()
            .unwrap()
            .get("deadline_reached")
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn system_allocations_go_last_and_stay_with_ignore_system_jobs() {
    for ignore in [false, true] {
        let mut sim = Sim::new(&["node-a"]);
        sim.register("agent", "system", 1, 1);
        sim.register("web", "service", 1, 1);
        sim.add_node("node-b");
        sim.settle();
        sim.drain("node-a", 0, ignore);
        sim.pass();
        let system_marked = |sim: &Sim| {
            sim.state()
                .allocs_by_job(NS, "agent")
                .any(|a| a.node_id == "node-a" && a.desired_transition.migrate == Some(true))
        };
        assert!(!system_marked(&sim), "system work is not moved first");
        let mut steps = 0;
        while !sim.drain_complete("node-a") {
            steps += 1;
            assert!(steps < 10);
            sim.settle();
            sim.pass();
        }
        let agent_on_a: Vec<_> = sim
            .live_on("node-a")
            .into_iter()
            .filter(|a| a.job_id == "agent")
            .collect();
        assert_eq!(agent_on_a.is_empty(), !ignore, "ignore_system={ignore}");
        assert_eq!(system_marked(&sim), !ignore);
    }
}

#[test]
fn a_forced_drain_stops_everything_even_without_room() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 2, 1);
    sim.drain("node-a", -1, false);
    assert_eq!(sim.pass(), 2);
    sim.settle();
    sim.pass();
    assert!(sim.live_on("node-a").is_empty());
    assert!(sim.drain_complete("node-a"));
}

#[test]
fn a_migration_without_room_keeps_running_says_why_and_finishes_when_a_node_joins() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 2, 1);
    sim.drain("node-a", 0, false);
    for _ in 0..3 {
        sim.pass();
        sim.settle();
    }
    assert_eq!(
        sim.live_on("node-a").len(),
        2,
        "nothing stopped without a replacement"
    );
    let state = sim.state();
    let blocked = state
        .evals_by_job(NS, "web")
        .find(|e| e.status == EVAL_STATUS_BLOCKED)
        .expect("a blocked evaluation");
    assert!(blocked
        .failed_tg_allocs
        .as_ref()
        .unwrap()
        .contains_key("group"));
    let message = super::blocked_message("web", "group");
    let told: Vec<_> = state
        .node("node-a")
        .unwrap()
        .events
        .clone()
        .into_iter()
        .filter(|e| e.message == message)
        .collect();
    assert_eq!(told.len(), 1, "one event per blocked evaluation");
    sim.add_node("node-b");
    let mut steps = 0;
    while !sim.drain_complete("node-a") {
        steps += 1;
        assert!(steps < 20);
        sim.run_evals(true);
        sim.client();
        sim.pass();
    }
    let on_b: BTreeSet<String> = sim
        .live_on("node-b")
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(on_b.len(), 2);
}

#[test]
fn a_migration_blocked_before_the_deadline_is_stopped_when_it_passes() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 1, 1);
    sim.drain("node-a", 60_000_000_000, false);
    for _ in 0..3 {
        sim.pass();
        sim.settle();
    }
    assert_eq!(sim.live_on("node-a").len(), 1, "kept running without room");
    sim.now += chrono::Duration::seconds(61);
    let mut steps = 0;
    while !sim.drain_complete("node-a") {
        steps += 1;
        assert!(
            steps < 10,
            "the deadline did not stop the blocked migration"
        );
        sim.pass();
        sim.settle(); // pending evaluations only: the blocked one stays
    }
    assert!(sim.live_on("node-a").is_empty());
}

#[test]
fn a_blocked_migration_already_told_is_not_told_again() {
    let mut sim = Sim::new(&["node-a"]);
    sim.register("web", "service", 1, 1);
    sim.drain("node-a", 0, false);
    for _ in 0..3 {
        sim.pass();
        sim.settle();
    }
    let blocked = sim
        .state()
        .evals_by_job(NS, "web")
        .find(|e| e.status == EVAL_STATUS_BLOCKED)
        .unwrap()
        .id
        .clone();
    // The node keeps ten events: push the drain's event out of them.
    let events = (0..10)
        .map(|n| caravan_api_types::node::NodeEvent::new("Driver", &format!("event {n}")))
        .collect();
    sim.apply(Command::NodeEmitEvents {
        node_id: "node-a".into(),
        events,
    });
    let state = sim.state();
    let told = |reported: &super::Reported| {
        decide(&state, sim.now, reported, &mut || "x".into())
            .events
            .len()
    };
    assert_eq!(told(&Default::default()), 1, "forgotten by the node alone");
    let reported = super::Reported::from([("node-a".into(), blocked, "group".into())]);
    assert_eq!(told(&reported), 0, "the drainer remembers what it told");
}
