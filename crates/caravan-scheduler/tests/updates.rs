//! Destructive updates on a full node: each replacement may use only the
//! room its own old allocation frees plus free room, so a replacement
//! that cannot be placed leaves its old allocation running without
//! another replacement having taken that room. The plan must then fit the
//! very state it was made on (the harness's `apply` re-checks each node
//! with the shared fit code, as the plan applier does).

use caravan_api_types::job::{Job, TaskGroup};
use caravan_scheduler::harness::{job, node, MemoryState};
use caravan_scheduler::SequentialIds;

const NOW: i64 = 1_700_000_000_000_000_000;

/// One 1000 MHz node.
fn one_node() -> MemoryState {
    let mut state = MemoryState::default();
    state.upsert_node(node("n0", "dc1", 1000, 8192));
    state
}

fn with_cpu(mut job: Job, cpu: i64) -> Job {
    for group in &mut job.task_groups {
        group.tasks[0].resources.cpu = cpu;
    }
    job
}

/// Schedules `job` on `state` and checks the plan against that same state.
fn update(state: &mut MemoryState, job: Job, ids: &mut SequentialIds) -> (usize, usize, bool) {
    let eval = state.upsert_job(job);
    let result = state.schedule(&eval, NOW, ids);
    let (stops, placements) = (
        result.plan.stops().count(),
        result.plan.placements().count(),
    );
    let rejected = state.apply(&result.plan);
    assert!(
        rejected.is_empty(),
        "the plan does not fit the state it was made on: {rejected:?}\n{:#?}",
        result.plan
    );
    (stops, placements, result.failed_tg_allocs.is_empty())
}

#[test]
fn a_replacement_never_takes_the_room_of_a_stop_that_is_withdrawn() {
    let mut state = one_node();
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(with_cpu(job("web", "service", 2), 200));
    state.run(&eval, NOW, &mut ids);
    assert_eq!(state.live_allocs("web").len(), 2);

    // 900 MHz fits only once both 200 MHz allocations are gone, and both
    // cannot be replaced: neither is stopped, and the group is blocked.
    let (stops, placements, placed_all) = update(
        &mut state,
        with_cpu(job("web", "service", 2), 900),
        &mut ids,
    );
    assert_eq!((stops, placements, placed_all), (0, 0, false));
    assert_eq!(state.live_allocs("web").len(), 2);
}

#[test]
fn a_replacement_that_fits_its_own_room_is_placed_and_the_other_kept() {
    let mut state = one_node();
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(with_cpu(job("web", "service", 2), 200));
    state.run(&eval, NOW, &mut ids);

    // 700 fits in the first allocation's room plus the free 600; the
    // second then has 300 and stays as it is.
    let (stops, placements, placed_all) = update(
        &mut state,
        with_cpu(job("web", "service", 2), 700),
        &mut ids,
    );
    assert_eq!((stops, placements, placed_all), (1, 1, false));
    let mut cpus: Vec<i64> = state
        .live_allocs("web")
        .iter()
        .map(|a| a.allocated_resources.as_ref().unwrap().totals().0)
        .collect();
    cpus.sort();
    assert_eq!(cpus, [200, 700]);
}

#[test]
fn a_system_replacement_never_takes_another_groups_withdrawn_room() {
    let mut state = one_node();
    let mut ids = SequentialIds::default();
    let two_groups = |cpu| {
        let mut agent = with_cpu(job("agent", "system", 1), cpu);
        let second = TaskGroup {
            name: "second".to_string(),
            ..agent.task_groups[0].clone()
        };
        agent.task_groups.push(second);
        agent
    };
    let eval = state.upsert_job(two_groups(200));
    state.run(&eval, NOW, &mut ids);
    assert_eq!(state.live_allocs("agent").len(), 2);

    let (stops, placements, _) = update(&mut state, two_groups(900), &mut ids);
    assert_eq!((stops, placements), (0, 0));
    assert_eq!(state.live_allocs("agent").len(), 2);
}
