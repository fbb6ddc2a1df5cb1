//! Preemption: a higher-priority placement evicting lower-priority
//! allocations of other jobs (scheduling.md §5).

use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::job::Job;
use caravan_scheduler::harness::{eval_for, job, node, ports, MemoryState};
use caravan_scheduler::{SchedulerResult, SequentialIds};

/// One node of `cpu` MHz (plenty of memory).
fn one_node(cpu: u64) -> MemoryState {
    let mut state = MemoryState::default();
    state.upsert_node(node("n0", "dc1", cpu, 16_384));
    state
}

fn job_with(id: &str, job_type: &str, priority: i64, cpu: i64) -> Job {
    let mut job = job(id, job_type, 1);
    job.priority = priority;
    job.task_groups[0].tasks[0].resources.cpu = cpu;
    job
}

/// Registers and schedules `job`; returns the run's result.
fn run(state: &mut MemoryState, ids: &mut SequentialIds, job: Job) -> SchedulerResult {
    let eval = state.upsert_job(job);
    state.run(&eval, 0, ids)
}

fn stored(state: &MemoryState, id: &str) -> Arc<Job> {
    state.jobs[&("default".into(), id.into())].clone()
}

fn only_live(state: &MemoryState, job_id: &str) -> Arc<Allocation> {
    let live = state.live_allocs(job_id);
    assert_eq!(live.len(), 1, "{job_id}: {live:#?}");
    live[0].clone()
}

fn evicted_ids(result: &SchedulerResult) -> Vec<String> {
    result
        .plan
        .stops()
        .filter(|a| a.desired_status == "evict")
        .map(|a| a.id.clone())
        .collect()
}

#[test]
fn a_system_job_evicts_a_low_priority_service_allocation_on_a_full_node() {
    let mut state = one_node(1000);
    let mut ids = SequentialIds::default();
    run(&mut state, &mut ids, job_with("web", "service", 20, 800));
    let victim = only_live(&state, "web");

    let result = run(&mut state, &mut ids, job_with("agent", "system", 50, 400));
    assert!(result.failed_tg_allocs.is_empty(), "{result:#?}");
    let placed: Vec<&Allocation> = result.plan.placements().collect();
    assert_eq!(placed.len(), 1);
    let new = placed[0];
    assert_eq!(
        new.preempted_allocations.as_deref(),
        Some(&[victim.id.clone()][..])
    );
    let stops = &result.plan.node_update["n0"];
    assert_eq!(stops.len(), 1);
    let evicted = &stops[0];
    assert_eq!(evicted.id, victim.id);
    assert_eq!(evicted.desired_status, "evict");
    assert_eq!(evicted.preempted_by_allocation, new.id);
    assert_eq!(
        evicted.desired_description,
        format!("Preempted by alloc ID {}", new.id)
    );
    // The node is scored with the preemption component.
    let scores = new.metrics.as_ref().and_then(|m| m.score_meta_data.clone());
    let preemption =
        scores.and_then(|s| s.first().and_then(|m| m.scores.get("preemption").copied()));
    assert!(preemption.is_some_and(|v| v > 0.5), "{:#?}", new.metrics);

    // Committed: the victim is server-terminal, the agent runs.
    assert!(state.allocs[&victim.id].server_terminal());
    only_live(&state, "agent");

    // The victim's own evaluation cannot take the room back (its priority
    // is lower), so it fails and blocks rather than evicting the agent.
    let web = stored(&state, "web");
    let again = state.run(&eval_for(&web, "preemption"), 0, &mut ids);
    assert!(evicted_ids(&again).is_empty(), "{again:#?}");
    assert_eq!(again.failed_tg_allocs["group"].nodes_exhausted, 1);
    assert_eq!(again.blocked_evals.len(), 1);
    // With a new node the evicted allocation is replaced there.
    state.upsert_node(node("n1", "dc1", 1000, 16_384));
    let again = state.run(&eval_for(&web, "preemption"), 0, &mut ids);
    assert!(again.failed_tg_allocs.is_empty(), "{again:#?}");
    assert_eq!(only_live(&state, "web").node_id, "n1");
}

#[test]
fn an_evicted_batch_allocation_is_replaced_by_its_job() {
    let mut state = one_node(1000);
    let mut ids = SequentialIds::default();
    run(&mut state, &mut ids, job_with("crunch", "batch", 20, 800));
    let victim = only_live(&state, "crunch");
    let result = run(&mut state, &mut ids, job_with("agent", "system", 50, 400));
    assert_eq!(evicted_ids(&result), vec![victim.id.clone()]);
    state.upsert_node(node("n1", "dc1", 1000, 16_384));
    let crunch = stored(&state, "crunch");
    let again = state.run(&eval_for(&crunch, "preemption"), 0, &mut ids);
    assert!(again.failed_tg_allocs.is_empty(), "{again:#?}");
    let replacement = only_live(&state, "crunch");
    assert_ne!(replacement.id, victim.id);
    assert_eq!(replacement.node_id, "n1");
}

#[test]
fn preemption_disabled_leaves_the_system_placement_failed() {
    let mut state = one_node(1000);
    state.config.preemption_config.system_scheduler_enabled = false;
    let mut ids = SequentialIds::default();
    run(&mut state, &mut ids, job_with("web", "service", 20, 800));
    let result = run(&mut state, &mut ids, job_with("agent", "system", 50, 400));
    assert!(evicted_ids(&result).is_empty());
    assert!(result.plan.placements().next().is_none());
    let failed = &result.failed_tg_allocs["group"];
    assert_eq!(failed.nodes_exhausted, 1);
    assert_eq!(failed.dimension_exhausted.as_ref().expect("dims")["cpu"], 1);
    only_live(&state, "web");
}

#[test]
fn a_priority_difference_below_ten_does_not_preempt() {
    let mut state = one_node(1000);
    let mut ids = SequentialIds::default();
    run(&mut state, &mut ids, job_with("web", "service", 41, 800));
    let result = run(&mut state, &mut ids, job_with("agent", "system", 50, 400));
    assert!(evicted_ids(&result).is_empty(), "{result:#?}");
    assert!(result.failed_tg_allocs.contains_key("group"));
    only_live(&state, "web");

    // Exactly ten below may be evicted.
    let mut state = one_node(1000);
    run(&mut state, &mut ids, job_with("web", "service", 40, 800));
    let result = run(&mut state, &mut ids, job_with("agent", "system", 50, 400));
    assert_eq!(evicted_ids(&result).len(), 1);
}

/// A node of 3400 MHz full of: `small` (priority 20, 900 MHz), `big`
/// (priority 20, 1500 MHz) and `exact` (priority 30, 1000 MHz).
fn full_of_three(ids: &mut SequentialIds) -> MemoryState {
    let mut state = one_node(3400);
    run(&mut state, ids, job_with("small", "service", 20, 900));
    run(&mut state, ids, job_with("big", "service", 20, 1500));
    run(&mut state, ids, job_with("exact", "service", 30, 1000));
    assert_eq!(state.live_allocs("exact").len(), 1);
    state
}

#[test]
fn service_preemption_is_off_by_default() {
    let mut ids = SequentialIds::default();
    let mut state = full_of_three(&mut ids);
    let result = run(
        &mut state,
        &mut ids,
        job_with("urgent", "service", 70, 1000),
    );
    assert!(evicted_ids(&result).is_empty());
    assert!(result.failed_tg_allocs.contains_key("group"));
    assert_eq!(result.blocked_evals.len(), 1);
}

#[test]
fn service_preemption_takes_the_lowest_priority_and_no_more_than_needed() {
    let mut ids = SequentialIds::default();
    let mut state = full_of_three(&mut ids);
    state.config.preemption_config.service_scheduler_enabled = true;
    let big = only_live(&state, "big");
    let result = run(
        &mut state,
        &mut ids,
        job_with("urgent", "service", 70, 1000),
    );
    assert!(result.failed_tg_allocs.is_empty(), "{result:#?}");
    // `exact` matches the ask best but has the higher priority; of the two
    // lowest, `small` is picked first (closest) but `big` alone covers the
    // ask, so only `big` is evicted.
    assert_eq!(evicted_ids(&result), vec![big.id.clone()]);
    only_live(&state, "small");
    only_live(&state, "exact");
    let urgent = only_live(&state, "urgent");
    assert_eq!(urgent.preempted_allocations, Some(vec![big.id.clone()]));
}

#[test]
fn a_node_that_fits_as_it_is_wins_over_eviction() {
    let mut ids = SequentialIds::default();
    let mut state = full_of_three(&mut ids);
    state.config.preemption_config.service_scheduler_enabled = true;
    state.upsert_node(node("n1", "dc1", 1000, 16_384));
    let result = run(
        &mut state,
        &mut ids,
        job_with("urgent", "service", 70, 1000),
    );
    assert!(evicted_ids(&result).is_empty(), "{result:#?}");
    assert_eq!(only_live(&state, "urgent").node_id, "n1");
}

#[test]
fn the_holder_of_a_needed_static_port_is_evicted_only_if_it_may_be() {
    let with_port = |id: &str, priority: i64| {
        let mut job = job_with(id, "service", priority, 100);
        job.task_groups[0].networks = Some(vec![ports(&[("http", 8080)], &[])]);
        job
    };
    let mut state = one_node(4000);
    state.config.preemption_config.service_scheduler_enabled = true;
    let mut ids = SequentialIds::default();
    run(&mut state, &mut ids, with_port("low", 20));
    // Room enough, but the port is taken: evicting the holder frees it.
    let holder = only_live(&state, "low");
    let result = run(&mut state, &mut ids, with_port("high", 70));
    assert_eq!(evicted_ids(&result), vec![holder.id.clone()]);
    let high = only_live(&state, "high");
    assert!(state.live_allocs("low").is_empty());

    // A holder of a priority too close is not evicted: no placement.
    let result = run(&mut state, &mut ids, with_port("near", 75));
    assert!(evicted_ids(&result).is_empty(), "{result:#?}");
    assert!(result.failed_tg_allocs.contains_key("group"));
    assert_eq!(only_live(&state, "high").id, high.id);
}
