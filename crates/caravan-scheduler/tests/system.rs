//! System and sysbatch jobs: one allocation per feasible node.

use caravan_api_types::alloc::ALLOC_CLIENT_COMPLETE;
use caravan_api_types::job::Constraint;
use caravan_api_types::node::INELIGIBLE;
use caravan_scheduler::harness::{eval_for, job, node, MemoryState};
use caravan_scheduler::SequentialIds;

fn cluster(nodes: usize) -> MemoryState {
    let mut state = MemoryState::default();
    for i in 0..nodes {
        state.upsert_node(node(&format!("n{i}"), "dc1", 4000, 8192));
    }
    state
}

fn nodes_of(state: &MemoryState, job_id: &str) -> Vec<String> {
    let mut nodes: Vec<String> = state
        .live_allocs(job_id)
        .iter()
        .map(|a| a.node_id.clone())
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn system_job_runs_on_every_node_and_a_new_node_gets_one() {
    let mut state = cluster(3);
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(job("agent", "system", 1));
    let result = state.run(&eval, 0, &mut ids);
    assert!(result.failed_tg_allocs.is_empty());
    assert_eq!(nodes_of(&state, "agent"), ["n0", "n1", "n2"]);
    assert!(state
        .live_allocs("agent")
        .iter()
        .all(|a| a.name == "agent.group[0]"));

    // Running it again changes nothing.
    assert!(state.schedule(&eval, 0, &mut ids).plan.is_no_op());

    state.upsert_node(node("n3", "dc1", 4000, 8192));
    let job = state.jobs[&("default".into(), "agent".into())].clone();
    let result = state.run(&eval_for(&job, "node-update"), 0, &mut ids);
    assert_eq!(
        result.plan.node_allocation.keys().collect::<Vec<_>>(),
        ["n3"]
    );
    assert_eq!(nodes_of(&state, "agent"), ["n0", "n1", "n2", "n3"]);

    // An ineligible node keeps what it runs but gets nothing new.
    state.upsert_node(node("n4", "dc1", 4000, 8192));
    state.update_node("n4", |n| n.scheduling_eligibility = INELIGIBLE.into());
    state.update_node("n0", |n| n.scheduling_eligibility = INELIGIBLE.into());
    assert!(state
        .schedule(&eval_for(&job, "node-update"), 0, &mut ids)
        .plan
        .is_no_op());
}

#[test]
fn nodes_no_longer_feasible_lose_their_allocation() {
    let mut state = cluster(3);
    let mut ids = SequentialIds::default();
    let mut agent = job("agent", "system", 1);
    agent.constraints = Some(vec![Constraint::new("${meta.role}", "!=", "edge")]);
    let eval = state.upsert_job(agent);
    state.run(&eval, 0, &mut ids);
    assert_eq!(nodes_of(&state, "agent").len(), 3);
    state.update_node("n1", |n| {
        n.meta.insert("role".into(), "edge".into());
    });
    let job = state.jobs[&("default".into(), "agent".into())].clone();
    let result = state.run(&eval_for(&job, "node-update"), 0, &mut ids);
    assert_eq!(
        result
            .plan
            .stops()
            .map(|a| a.node_id.as_str())
            .collect::<Vec<_>>(),
        ["n1"]
    );
    assert_eq!(nodes_of(&state, "agent"), ["n0", "n2"]);
    assert!(
        result.failed_tg_allocs.is_empty(),
        "a filtered node is not a failure"
    );
}

#[test]
fn exhausted_node_is_a_failure_with_a_blocked_eval_for_that_node() {
    let mut state = cluster(2);
    state.upsert_node(node("tiny", "dc1", 50, 8192));
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(job("agent", "system", 1));
    let result = state.run(&eval, 0, &mut ids);
    assert_eq!(nodes_of(&state, "agent"), ["n0", "n1"]);
    let failed = &result.failed_tg_allocs["group"];
    assert_eq!(failed.nodes_exhausted, 1);
    assert_eq!(failed.dimension_exhausted.as_ref().unwrap()["cpu"], 1);
    assert_eq!(result.queued_allocations["group"], 1);
    assert_eq!(result.blocked_evals.len(), 1);
    assert_eq!(result.blocked_evals[0].node_id, "tiny");
    assert_eq!(result.blocked_evals[0].status, "blocked");
}

#[test]
fn sysbatch_does_not_rerun_completed_work_until_the_job_changes() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let once = job("once", "sysbatch", 1);
    let eval = state.upsert_job(once.clone());
    state.run(&eval, 0, &mut ids);
    for alloc in state.live_allocs("once") {
        state.update_alloc(&alloc.id, |a| {
            a.client_status = ALLOC_CLIENT_COMPLETE.into()
        });
    }
    let job_now = state.jobs[&("default".into(), "once".into())].clone();
    assert!(state
        .schedule(&eval_for(&job_now, "node-update"), 0, &mut ids)
        .plan
        .is_no_op());

    let mut changed = once;
    changed.task_groups[0].tasks[0].env = Some([("RUN".to_string(), "2".to_string())].into());
    let eval = state.upsert_job(changed);
    let result = state.run(&eval, 0, &mut ids);
    assert_eq!(
        result.plan.placements().count(),
        2,
        "a new version runs again"
    );
}

#[test]
fn stopping_a_system_job_stops_every_allocation() {
    let mut state = cluster(3);
    let mut ids = SequentialIds::default();
    let agent = job("agent", "system", 1);
    let eval = state.upsert_job(agent.clone());
    state.run(&eval, 0, &mut ids);
    let mut stopped = agent;
    stopped.stop = true;
    let eval = state.upsert_job(stopped);
    let result = state.run(&eval, 0, &mut ids);
    assert_eq!(result.plan.stops().count(), 3);
    assert!(state.live_allocs("agent").is_empty());
}
