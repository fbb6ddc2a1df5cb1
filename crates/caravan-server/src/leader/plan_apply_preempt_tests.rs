//! Plans that preempt: an eviction frees its room for the check like any
//! stop, an eviction of an allocation that ended meanwhile is dropped, and
//! every job that loses allocations gets one `preemption` evaluation in
//! the plan's own write.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, ALLOC_CLIENT_FAILED};
use caravan_api_types::eval::{Evaluation, EVAL_STATUS_PENDING, TRIGGER_PREEMPTION};
use caravan_scheduler::harness;
use caravan_state::job_commands::{AllocClientUpdate, AllocsClientUpdate, PlanResult};
use caravan_state::{Command, State};

use super::super::{check, command};
use super::world::{JobSpec, NodeSpec, World, NAMESPACE, SECOND, T0};

/// One node of 1000 MHz full with priority-20 service allocations: two
/// of `low` and one of `other`, 300 MHz each; and a pending evaluation of
/// the system job `agent` (priority 70, 1000 MHz), which must evict all
/// three.
fn full_node_and_an_agent() -> (World, String) {
    let mut world = World::new(&[NodeSpec {
        cpu: 1000,
        reserved_cpu: 0,
        memory_mb: 4096,
        disk_mb: 2000,
        reserves_port: false,
    }]);
    let spec = |count| JobSpec {
        count,
        cpu: 300,
        memory_mb: 64,
        disk_mb: 50,
        port: None,
    };
    for (id, count) in [("low", 2), ("other", 1)] {
        let mut job = spec(count).job(id);
        job.priority = 20;
        let eval = world.register(job, T0);
        world.process(&eval, None, T0);
    }
    let mut agent = harness::job("agent", "system", 1);
    agent.namespace = NAMESPACE.into();
    agent.priority = 70;
    agent.task_groups[0].tasks[0].resources.cpu = 1000;
    agent.task_groups[0].tasks[0].resources.memory_mb = 64;
    let eval = world.register(agent, T0 + SECOND);
    (world, eval)
}

fn live(state: &State, job_id: &str) -> Vec<Arc<Allocation>> {
    state
        .allocs_by_job(NAMESPACE, job_id)
        .filter(|alloc| !alloc.terminal())
        .cloned()
        .collect()
}

fn preemption_evals(state: &State) -> Vec<Arc<Evaluation>> {
    ["low", "other", "agent"]
        .iter()
        .flat_map(|job| {
            state
                .evals_by_job(NAMESPACE, job)
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|eval| eval.triggered_by == TRIGGER_PREEMPTION)
        .collect()
}

#[test]
fn a_plan_that_preempts_commits_and_reschedules_each_victim_job_once() {
    let (mut world, eval) = full_node_and_an_agent();
    let before = world.store.snapshot();
    let victims: BTreeSet<String> = ["low", "other"]
        .iter()
        .flat_map(|job| live(&before, job))
        .map(|alloc| alloc.id.clone())
        .collect();
    assert_eq!(victims.len(), 3);
    assert!(preemption_evals(&before).is_empty());

    // `process` checks the plan against the node as full as it is, and
    // asserts the applier refuses exactly what would overcommit.
    world.process(&eval, None, T0 + SECOND);
    let state = world.store.snapshot();
    let agent = live(&state, "agent");
    assert_eq!(agent.len(), 1, "the agent was not placed");
    let preempted: BTreeSet<String> = agent[0]
        .preempted_allocations
        .iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(preempted, victims);
    for id in &victims {
        let alloc = state.alloc(id).expect("kept");
        assert_eq!(alloc.desired_status, "evict");
        assert_eq!(alloc.preempted_by_allocation, agent[0].id);
    }
    let evals = preemption_evals(&state);
    let jobs: Vec<&str> = evals.iter().map(|e| e.job_id.as_str()).collect();
    assert_eq!(jobs.len(), 2, "{evals:#?}");
    assert_eq!(jobs.iter().collect::<BTreeSet<_>>().len(), 2, "{evals:#?}");
    for eval in &evals {
        assert_eq!(eval.status, EVAL_STATUS_PENDING);
        assert_eq!(eval.priority, 20);
        assert_eq!(eval.eval_type, "service");
    }
}

#[test]
fn an_eviction_of_an_allocation_that_ended_is_dropped() {
    let (mut world, eval) = full_node_and_an_agent();
    let snapshot = world.store.snapshot();
    let result = world.schedule(&snapshot, &eval, T0 + SECOND);
    assert_eq!(result.plan.stops().count(), 3);
    // `other`'s allocation fails after the plan was made.
    let ended = live(&snapshot, "other")[0].id.clone();
    world.apply(&Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
        updates: vec![AllocClientUpdate {
            id: ended.clone(),
            client_status: ALLOC_CLIENT_FAILED.into(),
            client_description: String::new(),
            task_states: None,
            deployment_status: None,
        }],
        evals: Vec::new(),
        now: T0 + SECOND,
    })));
    let latest = world.store.snapshot();
    let checked = check(&latest, &result.plan, T0 + 2 * SECOND);
    assert!(checked.refused_nodes.is_empty());
    let stopped: Vec<&str> = checked.result.stops.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(stopped.len(), 2);
    assert!(!stopped.contains(&ended.as_str()));
    // Only `low` is preempted now.
    let jobs: Vec<&str> = checked
        .result
        .evals
        .iter()
        .map(|e| e.job_id.as_str())
        .collect();
    assert_eq!(jobs, ["low"]);
    world.apply(&command(checked.result, vec![result.eval.clone()]));
    let state = world.store.snapshot();
    let kept = state.alloc(&ended).expect("kept");
    assert_eq!(kept.desired_status, "run", "{kept:#?}");
    assert!(kept.preempted_by_allocation.is_empty());
    assert_eq!(preemption_evals(&state).len(), 1);
    world.assert_no_overcommit();
}

#[test]
fn a_refused_node_evicts_nothing() {
    let (mut world, eval) = full_node_and_an_agent();
    let snapshot = world.store.snapshot();
    let result = world.schedule(&snapshot, &eval, T0 + SECOND);
    // Another worker commits first: 100 MHz more fills the node, so the
    // agent no longer fits even with its victims gone.
    let mut extra = live(&snapshot, "low")[0].as_ref().clone();
    extra.id = "00000000-0000-4000-8000-00000000beef".into();
    extra.name = "low.group[7]".into();
    if let Some(resources) = extra.allocated_resources.as_mut() {
        for task in resources.tasks.values_mut() {
            task.cpu.cpu_shares = 100;
        }
    }
    world.apply(&Command::PlanApply(Box::new(PlanResult {
        job: None,
        allocs: vec![extra],
        stops: Vec::new(),
        evals: Vec::new(),
        now: T0 + SECOND,
    })));
    world.assert_no_overcommit();
    let latest = world.store.snapshot();
    let checked = check(&latest, &result.plan, T0 + 2 * SECOND);
    assert_eq!(checked.refused_nodes.len(), 1);
    assert!(
        checked.result.stops.is_empty(),
        "{:#?}",
        checked.result.stops
    );
    assert!(
        checked.result.evals.is_empty(),
        "{:#?}",
        checked.result.evals
    );
}
