//! The plan applier's promise, as a property: workers that plan on the
//! same snapshot never overcommit a node, because every plan is checked
//! against the latest state before it is committed, and a node is refused
//! exactly when its placements would not fit.
//!
//! Each case builds a state of random nodes (capacities, reserved CPU, a
//! reserved host port) and four jobs placed by the real scheduler, fails
//! or completes some of their allocations, then takes ONE snapshot on
//! which two scheduler runs (jobs 0 and 1, re-registered with new specs:
//! destructive updates, count changes, reschedules) and two purely random
//! plans (jobs 2 and 3: stops, in-place resizes, attribute updates of
//! finished allocations, new placements on any node or a missing one) are
//! made, as concurrent workers would. The four are committed in a random
//! order the way `scheduling::process` commits them. After every commit no
//! node's live allocations exceed its CPU, memory or disk or share a port;
//! every check refuses exactly the nodes an independent count says would
//! overcommit; and every evaluation finishes. The stricter variant: a
//! plan made on the very state it is checked against is never refused,
//! and both scheduled evaluations end complete (it found the scheduler's
//! withdrawn-stop bug, `a_withdrawn_destructive_update_leaves_its_node_fitting`).
//!
//! Two examples pin the bug this property found in the applier: an update
//! of a finished allocation on a full node was fit-checked as if it held
//! its resources again, so the plan was refused on every attempt.

use std::collections::BTreeMap;
use std::sync::Arc;

use caravan_api_types::alloc::{
    AllocatedCpu, AllocatedMemory, AllocatedPortMapping, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources, Allocation, ALLOC_CLIENT_COMPLETE,
    ALLOC_CLIENT_FAILED,
};
use caravan_api_types::eval::{EVAL_STATUS_COMPLETE, EVAL_STATUS_PENDING};
use caravan_api_types::job::Job;
use caravan_scheduler::rng::SplitMix64;
use caravan_scheduler::{Plan, SchedulerResult};
use caravan_state::job_commands::{AllocClientUpdate, AllocsClientUpdate};
use caravan_state::{Command, State};
use proptest::prelude::*;

use super::check;
use world::{JobSpec, NodeSpec, World, NAMESPACE, PORTS, SECOND, T0};

#[path = "plan_apply_world.rs"]
mod world;

#[path = "plan_apply_node_tests.rs"]
mod nodes;

#[path = "plan_apply_preempt_tests.rs"]
mod preempt;

fn random_resources(rng: &mut SplitMix64, host_ip: &str, ports: bool) -> AllocatedResources {
    let mut range = |low: u64, high: u64| (low + rng.below(high - low + 1)) as i64;
    let task = AllocatedTaskResources {
        cpu: AllocatedCpu {
            cpu_shares: range(50, 1500),
            reserved_cores: None,
        },
        memory: AllocatedMemory {
            memory_mb: range(32, 1024),
            memory_max_mb: 0,
        },
        ..AllocatedTaskResources::default()
    };
    let disk_mb = range(0, 300);
    let port = (ports && range(0, 2) == 0).then(|| PORTS[range(0, 2) as usize]);
    AllocatedResources {
        tasks: BTreeMap::from([("task".to_string(), task)]),
        shared: AllocatedSharedResources {
            disk_mb,
            ports: port.map(|port| {
                vec![AllocatedPortMapping {
                    label: "fixed".into(),
                    value: i32::from(port),
                    to: i32::from(port),
                    host_ip: host_ip.into(),
                    ignore_collision: false,
                }]
            }),
            networks: None,
        },
        ..AllocatedResources::default()
    }
}

/// A worker's plan for `job` made on `state` without any fit check: stops
/// and in-place resizes of its live allocations, attribute updates of its
/// finished ones, new placements on random nodes (or a missing one).
fn random_plan(state: &State, job: &Arc<Job>, seed: u64) -> Plan {
    let mut rng = SplitMix64::new(seed);
    let mut plan = Plan {
        eval_id: format!("random-{}", job.id),
        job: Some(Arc::clone(job)),
        snapshot_index: state.latest_index(),
        ..Plan::default()
    };
    let ip = |node_id: &str| {
        state
            .node(node_id)
            .and_then(|node| node.attributes.get("unique.network.ip-address").cloned())
            .unwrap_or_default()
    };
    for alloc in state.allocs_by_job(NAMESPACE, &job.id) {
        let mut copy = alloc.as_ref().clone();
        if alloc.terminal() {
            if !alloc.server_terminal() && rng.below(2) == 0 {
                copy.followup_eval_id = format!("followup-{}", alloc.id);
                plan.push_alloc(copy);
            }
            continue;
        }
        match rng.below(4) {
            0 => {
                copy.desired_status = "stop".into();
                copy.desired_description = "stopped by a random plan".into();
                plan.push_stop(copy);
            }
            1 => {
                // Resized in place, keeping its ports.
                let mut resized = random_resources(&mut rng, &ip(&alloc.node_id), false);
                if let Some(old) = &alloc.allocated_resources {
                    resized.shared.ports = old.shared.ports.clone();
                    resized.shared.networks = old.shared.networks.clone();
                }
                copy.allocated_resources = Some(resized);
                plan.push_alloc(copy);
            }
            _ => {}
        }
    }
    let mut nodes: Vec<String> = state.nodes().map(|node| node.id.clone()).collect();
    nodes.push("missing-node".into());
    for n in 0..rng.below(6) {
        let node_id = nodes[rng.below(nodes.len() as u64) as usize].clone();
        let resources = random_resources(&mut rng, &ip(&node_id), true);
        plan.push_alloc(Allocation {
            id: format!("random-{}-{n}", job.id),
            namespace: NAMESPACE.into(),
            eval_id: plan.eval_id.clone(),
            name: format!("{}.group[{}]", job.id, 100 + n),
            node_id,
            job_id: job.id.clone(),
            task_group: "group".into(),
            allocated_resources: Some(resources),
            desired_status: "run".into(),
            client_status: "pending".into(),
            ..Allocation::default()
        });
    }
    plan
}

#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<NodeSpec>,
    jobs: Vec<JobSpec>,
    /// Per allocation placed at first (in ID order): 0 failed, 1 complete,
    /// anything else left running.
    outcomes: Vec<u8>,
    /// New specs for jobs 0 and 1 (`None`: the same spec, a new eval).
    updates: Vec<Option<JobSpec>>,
    /// How long after the failures the workers plan (reschedules delayed
    /// with a follow-up eval, or placed now).
    later: i64,
    seeds: (u64, u64),
    /// The order the four plans reach the applier.
    order: Vec<usize>,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (1..=8i64, 0..=2i64, 1..=8i64, 1..=8i64, any::<bool>()).prop_map(
        |(cpu, reserved, memory, disk, reserves_port)| NodeSpec {
            cpu: cpu * 500,
            reserved_cpu: reserved * 100,
            memory_mb: memory * 512,
            disk_mb: disk * 250,
            reserves_port,
        },
    )
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        1..=5i64,
        1..=15i64,
        1..=16i64,
        0..=6i64,
        prop_oneof![
            Just(None),
            Just(Some(0u16)),
            prop::sample::select(PORTS.to_vec()).prop_map(Some)
        ],
    )
        .prop_map(|(count, cpu, memory, disk, port)| JobSpec {
            count,
            cpu: cpu * 100,
            memory_mb: memory * 64,
            disk_mb: disk * 50,
            port,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(node_spec(), 1..=4),
        prop::collection::vec(job_spec(), 4),
        prop::collection::vec(0..4u8, 20),
        prop::collection::vec(prop::option::of(job_spec()), 2),
        prop_oneof![Just(SECOND), Just(120 * SECOND)],
        any::<(u64, u64)>(),
        Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
    )
        .prop_map(
            |(nodes, jobs, outcomes, updates, later, seeds, order)| Case {
                nodes,
                jobs,
                outcomes,
                updates,
                later,
                seeds,
                order,
            },
        )
}

/// Runs one case; with `agree`, also asserts that the scheduler's plans
/// are accepted on the state they were made on and that both scheduled
/// evaluations complete.
fn run(case: &Case, agree: bool) {
    let mut world = World::new(&case.nodes);
    world.agree = agree;
    // The jobs as they first run, placed one after the other.
    let job_ids: Vec<String> = (0..case.jobs.len()).map(|n| format!("job-{n}")).collect();
    for (id, spec) in job_ids.iter().zip(&case.jobs) {
        let eval = world.register(spec.job(id), T0);
        world.process(&eval, None, T0);
    }
    // Some of their allocations fail or complete.
    let state = world.store.snapshot();
    let mut placed: Vec<&Arc<Allocation>> = state.allocs().filter(|a| !a.terminal()).collect();
    placed.sort_by(|a, b| a.id.cmp(&b.id));
    let updates: Vec<AllocClientUpdate> = placed
        .iter()
        .zip(&case.outcomes)
        .filter_map(|(alloc, outcome)| {
            let status = match outcome {
                0 => ALLOC_CLIENT_FAILED,
                1 => ALLOC_CLIENT_COMPLETE,
                _ => return None,
            };
            Some(AllocClientUpdate {
                id: alloc.id.clone(),
                client_status: status.into(),
                client_description: String::new(),
                task_states: None,
                deployment_status: None,
            })
        })
        .collect();
    drop(state);
    world.apply(&Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
        updates,
        evals: Vec::new(),
        now: T0 + SECOND,
    })));
    world.assert_no_overcommit();

    // Jobs 0 and 1 get new evaluations; then four workers plan on one
    // snapshot.
    let now = T0 + SECOND + case.later;
    let mut evals = Vec::new();
    for (n, update) in case.updates.iter().enumerate() {
        let spec = update.as_ref().unwrap_or(&case.jobs[n]);
        evals.push(world.register(spec.job(&job_ids[n]), now));
    }
    let snapshot = world.store.snapshot();
    let mut scheduled: Vec<Option<SchedulerResult>> = Vec::new();
    for eval in &evals {
        let result = world.schedule(&snapshot, eval, now);
        let alone = check(&snapshot, &result.plan, now);
        assert!(
            !agree || alone.refused_nodes.is_empty(),
            "a plan is refused on the snapshot it was made on: {:?}\nplan:\n{}\nnodes:\n{}",
            alone.refused_nodes,
            world::describe_plan(&result.plan),
            world.describe_nodes(&snapshot)
        );
        scheduled.push(Some(result));
    }
    let job = |n: usize| Arc::clone(snapshot.job(NAMESPACE, &job_ids[n]).expect("job"));
    let mut random = [
        Some(random_plan(&snapshot, &job(2), case.seeds.0)),
        Some(random_plan(&snapshot, &job(3), case.seeds.1)),
    ];
    for worker in &case.order {
        match worker {
            0 | 1 => {
                let first = scheduled[*worker].take();
                world.process(&evals[*worker], first, now);
            }
            _ => {
                let plan = random[worker - 2].take().expect("planned once");
                world.commit(&plan, now, |_| Vec::new());
            }
        }
    }
    let state = world.store.snapshot();
    for eval in &evals {
        let stored = state.eval(eval).expect("stored");
        let finished = match agree {
            true => stored.status == EVAL_STATUS_COMPLETE,
            false => stored.status != EVAL_STATUS_PENDING,
        };
        assert!(finished, "evaluation {eval} did not finish: {stored:#?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn workers_planning_on_one_snapshot_never_overcommit_a_node(case in case()) {
        run(&case, false);
    }

    /// Also: a plan is never refused on the state it was made on, and
    /// every evaluation completes.
    #[test]
    fn the_scheduler_and_the_applier_agree(case in case()) {
        run(&case, true);
    }
}

/// The scheduler used to stop both allocations of a destructive update,
/// place the first replacement in the room the second one's stop freed,
/// fail the second, and withdraw its stop: the node then held the old
/// second allocation plus the new first one, more than it has, and the
/// scheduler's own plan on an unchanged state was refused (found by
/// `the_scheduler_and_the_applier_agree`). Each replacement now uses only
/// its own old allocation's room.
#[test]
fn a_withdrawn_destructive_update_leaves_its_node_fitting() {
    let mut world = World::new(&[NodeSpec {
        cpu: 1000,
        reserved_cpu: 0,
        memory_mb: 2048,
        disk_mb: 750,
        reserves_port: false,
    }]);
    let spec = |cpu| JobSpec {
        count: 2,
        cpu,
        memory_mb: 64,
        disk_mb: 0,
        port: None,
    };
    let eval = world.register(spec(200).job("web"), T0);
    world.process(&eval, None, T0);
    // 2 x 900 MHz cannot fit in 1000: one replacement at most.
    let eval = world.register(spec(900).job("web"), T0 + SECOND);
    let snapshot = world.store.snapshot();
    let result = world.schedule(&snapshot, &eval, T0 + SECOND);
    let checked = check(&snapshot, &result.plan, T0 + SECOND);
    assert!(
        checked.refused_nodes.is_empty(),
        "the scheduler's plan does not fit the state it was made on:\n{}\nnodes:\n{}",
        world::describe_plan(&result.plan),
        world.describe_nodes(&snapshot)
    );
}

/// A bench with one node of 1000 MHz holding job `a`'s allocation, failed,
/// and job `b`'s 600 MHz one placed after (the failed one holds nothing).
fn full_node_with_a_failed_allocation() -> (World, Arc<Allocation>) {
    let mut world = World::new(&[NodeSpec {
        cpu: 1000,
        reserved_cpu: 0,
        memory_mb: 4096,
        disk_mb: 2000,
        reserves_port: false,
    }]);
    let spec = |cpu| JobSpec {
        count: 1,
        cpu,
        memory_mb: 64,
        disk_mb: 50,
        port: None,
    };
    let eval = world.register(spec(500).job("a"), T0);
    world.process(&eval, None, T0);
    let failed = world.fail_all("a", T0 + SECOND);
    let eval = world.register(spec(600).job("b"), T0 + SECOND);
    world.process(&eval, None, T0 + SECOND);
    (world, failed)
}

#[test]
fn a_delayed_reschedule_on_a_full_node_completes_with_its_follow_up() {
    let (mut world, failed) = full_node_with_a_failed_allocation();
    // Within the reschedule delay: the plan only sets the failed
    // allocation's FollowupEvalID, on its (full) node.
    let now = T0 + 2 * SECOND;
    let eval = world.register(world.job("a"), now);
    world.process(&eval, None, now);
    let state = world.store.snapshot();
    let stored = state.eval(&eval).expect("stored");
    assert_eq!(stored.status, EVAL_STATUS_COMPLETE, "{stored:#?}");
    let kept = state.alloc(&failed.id).expect("kept");
    let followup = state.eval(&kept.followup_eval_id);
    assert!(
        followup.is_some_and(|f| f.wait_until.is_some()),
        "the follow-up eval {:?} was not written",
        kept.followup_eval_id
    );
}

#[test]
fn a_reschedule_with_no_room_completes_and_blocks() {
    let (mut world, failed) = full_node_with_a_failed_allocation();
    // Past the delay: the replacement fits nowhere, so the plan records
    // "no placement" on the failed allocation, on its (full) node.
    let now = T0 + 120 * SECOND;
    let eval = world.register(world.job("a"), now);
    world.process(&eval, None, now);
    let state = world.store.snapshot();
    let stored = state.eval(&eval).expect("stored");
    assert_eq!(stored.status, EVAL_STATUS_COMPLETE, "{stored:#?}");
    assert!(
        state.eval(&stored.blocked_eval).is_some(),
        "no blocked eval written: {stored:#?}"
    );
    let kept = state.alloc(&failed.id).expect("kept");
    assert_eq!(
        kept.reschedule_tracker
            .as_ref()
            .map(|t| t.last_reschedule.as_str()),
        Some("no placement")
    );
}
