//! What the plan applier does with a node it refuses, and which nodes it
//! refuses besides those that do not fit: a refused node loses its stops
//! with its placements, and a node that is not ready or not eligible
//! takes no allocation new to it, while updates of what it already holds
//! go through (Nomad's `evaluateNodePlan`).

use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::node::{INELIGIBLE, NODE_STATUS_DOWN, NODE_STATUS_INITIALIZING};
use caravan_scheduler::Plan;
use caravan_state::Command;

use super::super::check;
use super::world::{JobSpec, NodeSpec, World, NAMESPACE, SECOND, T0};

const NODE: NodeSpec = NodeSpec {
    cpu: 1000,
    reserved_cpu: 0,
    memory_mb: 4096,
    disk_mb: 2000,
    reserves_port: false,
};

/// Two nodes with two 400 MHz allocations of job "web" each (binpacked
/// two to a node, 800 of 1000), and the live allocations.
fn two_full_nodes() -> (World, Vec<Arc<Allocation>>) {
    let mut world = World::new(&[NODE, NODE]);
    let spec = JobSpec {
        count: 4,
        cpu: 400,
        memory_mb: 64,
        disk_mb: 50,
        port: None,
    };
    let eval = world.register(spec.job("web"), T0);
    world.process(&eval, None, T0);
    let state = world.store.snapshot();
    let live: Vec<Arc<Allocation>> = state
        .allocs_by_job(NAMESPACE, "web")
        .filter(|alloc| !alloc.terminal())
        .cloned()
        .collect();
    assert_eq!(live.len(), 4);
    (world, live)
}

fn plan_for(world: &World) -> Plan {
    let state = world.store.snapshot();
    Plan {
        eval_id: "hand-made".into(),
        job: state.job(NAMESPACE, "web").cloned(),
        snapshot_index: state.latest_index(),
        ..Plan::default()
    }
}

fn stopped(alloc: &Allocation) -> Allocation {
    Allocation {
        desired_status: "stop".into(),
        desired_description: "alloc is being updated due to job update".into(),
        ..alloc.clone()
    }
}

/// A new allocation on `alloc`'s node, like it but with `cpu` MHz.
fn new_beside(alloc: &Allocation, id: &str, cpu: i64) -> Allocation {
    let mut placed = Allocation {
        id: id.into(),
        name: "web.group[9]".into(),
        ..alloc.clone()
    };
    if let Some(resources) = placed.allocated_resources.as_mut() {
        for task in resources.tasks.values_mut() {
            task.cpu.cpu_shares = cpu;
        }
    }
    placed
}

fn stop_ids(plan: &Plan, world: &World) -> (Vec<String>, Vec<String>) {
    let checked = check(&world.store.snapshot(), plan, T0 + SECOND);
    let stops = checked.result.stops.iter().map(|s| s.id.clone()).collect();
    (stops, checked.refused_nodes)
}

#[test]
fn a_refused_node_keeps_the_allocations_the_plan_stops_on_it() {
    let (world, live) = two_full_nodes();
    let a = &live[0];
    let b = live
        .iter()
        .find(|x| x.node_id != a.node_id)
        .expect("other node");
    let mut plan = plan_for(&world);
    // A's room (400) plus the free 200 cannot hold 900: the node is
    // refused, and A must keep running rather than be stopped for a
    // replacement that is not committed.
    plan.push_stop(stopped(a));
    plan.push_alloc(new_beside(a, "replacement", 900));
    // B's node has no placements: its stop needs no check.
    plan.push_stop(stopped(b));
    let (stops, refused) = stop_ids(&plan, &world);
    assert_eq!(refused, [a.node_id.as_str()]);
    assert_eq!(stops, [b.id.as_str()]);

    // The same stop with a replacement that fits is committed.
    let mut plan = plan_for(&world);
    plan.push_stop(stopped(a));
    plan.push_alloc(new_beside(a, "replacement", 600));
    let (stops, refused) = stop_ids(&plan, &world);
    assert!(refused.is_empty());
    assert_eq!(stops, [a.id.as_str()]);
}

#[test]
fn a_stop_whose_replacement_is_refused_on_another_node_is_not_committed() {
    let (world, live) = two_full_nodes();
    let a = &live[0];
    let b = live
        .iter()
        .find(|x| x.node_id != a.node_id)
        .expect("other node");
    // A moves to B's node (a migration or destructive update), where 900
    // MHz does not fit: A's node has no placement, yet A must keep running.
    let mut plan = plan_for(&world);
    let mut replacement = new_beside(b, "replacement", 900);
    replacement.previous_allocation = a.id.clone();
    plan.push_stop(Allocation {
        next_allocation: "replacement".into(),
        ..stopped(a)
    });
    plan.push_alloc(replacement);
    let (stops, refused) = stop_ids(&plan, &world);
    assert_eq!(refused, [b.node_id.as_str()]);
    assert!(stops.is_empty(), "{stops:?}");

    // With a replacement that fits, the stop goes with it.
    let mut plan = plan_for(&world);
    plan.push_stop(Allocation {
        next_allocation: "replacement".into(),
        ..stopped(a)
    });
    plan.push_alloc(new_beside(b, "replacement", 100));
    let (stops, refused) = stop_ids(&plan, &world);
    assert!(refused.is_empty());
    assert_eq!(stops, [a.id.as_str()]);
}

/// A plan on `alloc`'s node placing a new 100 MHz allocation (it fits),
/// updating `alloc` in place, and annotating a finished allocation there.
fn new_and_updates(world: &World, alloc: &Allocation, finished: &Allocation) -> (Plan, Plan) {
    let mut updates = plan_for(world);
    updates.push_alloc(Allocation {
        eval_id: "hand-made".into(),
        ..alloc.clone()
    });
    updates.push_alloc(Allocation {
        followup_eval_id: "follow-up".into(),
        ..finished.clone()
    });
    let mut placing = updates.clone();
    placing.push_alloc(new_beside(alloc, "new-one", 100));
    (placing, updates)
}

#[test]
fn a_node_that_is_not_ready_or_not_eligible_takes_nothing_new() {
    let (mut world, live) = two_full_nodes();
    let alloc = Arc::clone(&live[0]);
    let node_id = alloc.node_id.clone();
    // Fail one allocation on that node, so the plan can annotate it.
    let finished = live
        .iter()
        .find(|x| x.node_id == node_id && x.id != alloc.id)
        .expect("a second allocation on the node");
    world.apply(&Command::AllocsClientUpdate(Box::new(
        caravan_state::job_commands::AllocsClientUpdate {
            updates: vec![caravan_state::job_commands::AllocClientUpdate {
                id: finished.id.clone(),
                client_status: "failed".into(),
                client_description: String::new(),
                task_states: None,
                deployment_status: None,
            }],
            evals: Vec::new(),
            now: T0 + SECOND,
        },
    )));
    let finished = world
        .store
        .snapshot()
        .alloc(&finished.id)
        .expect("stored")
        .as_ref()
        .clone();

    // Ready and eligible: everything fits and is accepted.
    let (placing, updates) = new_and_updates(&world, &alloc, &finished);
    assert!(stop_ids(&placing, &world).1.is_empty());

    let at = chrono::DateTime::from_timestamp_nanos(T0 + 2 * SECOND);
    let closings = [
        Command::NodeUpdateEligibility {
            node_id: node_id.clone(),
            eligibility: INELIGIBLE.into(),
            now: at,
        },
        Command::NodeUpdateStatus {
            node_id: node_id.clone(),
            status: NODE_STATUS_INITIALIZING.into(),
            event: None,
            now: at,
        },
        Command::NodeUpdateStatus {
            node_id: node_id.clone(),
            status: NODE_STATUS_DOWN.into(),
            event: None,
            now: at,
        },
    ];
    for closing in closings {
        world.apply(&closing);
        let node = world
            .store
            .snapshot()
            .node(&node_id)
            .cloned()
            .expect("node");
        let what = format!("{} {}", node.status, node.scheduling_eligibility);
        let (_, refused) = stop_ids(&placing, &world);
        assert_eq!(
            refused,
            [node_id.as_str()],
            "a new allocation on a {what} node"
        );
        let checked = check(&world.store.snapshot(), &updates, T0 + 3 * SECOND);
        assert!(
            checked.refused_nodes.is_empty(),
            "updates of what a {what} node holds were refused"
        );
        assert_eq!(checked.result.allocs.len(), 2, "on a {what} node");
    }
}

#[test]
fn a_node_that_is_gone_takes_updates_of_its_finished_allocations_only() {
    let (mut world, live) = two_full_nodes();
    let alloc = Arc::clone(&live[0]);
    let mut finished = alloc.as_ref().clone();
    finished.client_status = "failed".into();
    world.apply(&Command::NodeDeregister {
        node_ids: vec![alloc.node_id.clone()],
    });
    let (placing, _) = new_and_updates(&world, &alloc, &finished);
    assert_eq!(stop_ids(&placing, &world).1, [alloc.node_id.as_str()]);
    let mut annotating = plan_for(&world);
    annotating.push_alloc(Allocation {
        followup_eval_id: "follow-up".into(),
        ..finished
    });
    assert!(stop_ids(&annotating, &world).1.is_empty());
}
