//! The service/batch scheduler over several evaluations: scaling, lost
//! nodes, reschedules with delays, batch completion, updates, stops,
//! drains.

use std::collections::BTreeSet;

use caravan_api_types::alloc::{
    DesiredTransition, TaskState, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_RUNNING,
};
use caravan_api_types::job::group::SECOND;
use caravan_api_types::job::ReschedulePolicy;
use caravan_api_types::node::{DrainStrategy, NODE_STATUS_DOWN};
use caravan_scheduler::harness::{eval_for, job, node, MemoryState};
use caravan_scheduler::reconcile::reschedule::next_delay;
use caravan_scheduler::SequentialIds;

const NOW: i64 = 1_700_000_000_000_000_000;

fn cluster(nodes: usize) -> MemoryState {
    let mut state = MemoryState::default();
    for i in 0..nodes {
        state.upsert_node(node(&format!("n{i}"), "dc1", 4000, 8192));
    }
    state
}

fn names(state: &MemoryState, job_id: &str) -> BTreeSet<String> {
    state
        .live_allocs(job_id)
        .iter()
        .map(|a| a.name.clone())
        .collect()
}

fn set_running(state: &mut MemoryState, job_id: &str) {
    for alloc in state.live_allocs(job_id) {
        state.update_alloc(&alloc.id, |a| a.client_status = ALLOC_CLIENT_RUNNING.into());
    }
}

#[test]
fn count_up_and_down_uses_lowest_and_drops_highest_indexes() {
    let mut state = cluster(3);
    let mut ids = SequentialIds::default();
    let web = job("web", "service", 3);
    let eval = state.upsert_job(web.clone());
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.placements().count(), 3);
    assert!(result.failed_tg_allocs.is_empty());
    assert_eq!(result.eval.status, "complete");
    assert_eq!(
        names(&state, "web"),
        ["web.group[0]", "web.group[1]", "web.group[2]"]
            .map(String::from)
            .into()
    );
    let first = result.plan.placements().next().unwrap();
    assert_eq!(first.desired_status, "run");
    assert_eq!(first.client_status, "pending");
    assert_eq!(first.job_id, "web");
    assert!(first.allocated_resources.is_some() && first.metrics.is_some());

    let before: BTreeSet<String> = state
        .live_allocs("web")
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let mut bigger = web.clone();
    bigger.task_groups[0].count = 5;
    let eval = state.upsert_job(bigger);
    let result = state.run(&eval, NOW, &mut ids);
    let new = result
        .plan
        .placements()
        .filter(|a| !before.contains(&a.id))
        .count();
    assert_eq!(new, 2, "only the missing two are new");
    assert_eq!(
        result.plan.placements().count(),
        5,
        "the other three are updated in place"
    );
    assert!(
        result.plan.node_update.is_empty(),
        "a count change is in place"
    );
    assert_eq!(names(&state, "web").len(), 5);

    let mut smaller = web.clone();
    smaller.task_groups[0].count = 2;
    let eval = state.upsert_job(smaller);
    let result = state.run(&eval, NOW, &mut ids);
    let stopped: BTreeSet<String> = result.plan.stops().map(|a| a.name.clone()).collect();
    assert_eq!(
        stopped,
        ["web.group[2]", "web.group[3]", "web.group[4]"]
            .map(String::from)
            .into()
    );
    assert!(result.plan.stops().all(|a| a.desired_status == "stop"
        && a.desired_description == "alloc not needed due to job update"));
    assert_eq!(
        names(&state, "web"),
        ["web.group[0]", "web.group[1]"].map(String::from).into()
    );

    // Nothing to do: a no-op plan.
    let eval = eval_for(
        &state.jobs[&("default".into(), "web".into())],
        "job-register",
    );
    assert!(state.schedule(&eval, NOW, &mut ids).plan.is_no_op());
}

#[test]
fn allocations_on_a_down_node_are_lost_and_replaced() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(job("web", "service", 4));
    state.run(&eval, NOW, &mut ids);
    set_running(&mut state, "web");
    let on_n0: Vec<String> = state
        .live_allocs("web")
        .iter()
        .filter(|a| a.node_id == "n0")
        .map(|a| a.name.clone())
        .collect();
    assert!(!on_n0.is_empty());
    state.update_node("n0", |n| n.status = NODE_STATUS_DOWN.into());
    let eval = eval_for(
        &state.jobs[&("default".into(), "web".into())],
        "node-update",
    );
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.stops().count(), on_n0.len());
    for stop in result.plan.stops() {
        assert_eq!(stop.client_status, "lost");
        assert_eq!(
            stop.desired_description,
            "alloc is lost since its node is down"
        );
        assert!(!stop.next_allocation.is_empty());
    }
    let placed: Vec<_> = result.plan.placements().collect();
    assert_eq!(placed.len(), on_n0.len());
    assert!(placed
        .iter()
        .all(|a| a.node_id == "n1" && !a.previous_allocation.is_empty()));
    let mut replaced: Vec<String> = placed.iter().map(|a| a.name.clone()).collect();
    replaced.sort();
    let mut lost = on_n0.clone();
    lost.sort();
    assert_eq!(replaced, lost, "replacements keep the names");
    assert_eq!(state.live_allocs("web").len(), 4);
}

#[test]
fn failed_allocation_is_rescheduled_after_its_delay() {
    let mut state = cluster(3);
    let mut ids = SequentialIds::default();
    let mut web = job("web", "service", 1);
    web.task_groups[0].reschedule_policy = Some(ReschedulePolicy {
        delay: 30 * SECOND,
        delay_function: "exponential".into(),
        max_delay: 3600 * SECOND,
        unlimited: true,
        ..ReschedulePolicy::default()
    });
    let eval = state.upsert_job(web);
    state.run(&eval, NOW, &mut ids);
    let first = state.live_allocs("web")[0].clone();
    let failed_at = NOW + 10 * SECOND;
    state.update_alloc(&first.id, |a| {
        a.client_status = ALLOC_CLIENT_FAILED.into();
        a.task_states = Some(
            [(
                "task".to_string(),
                TaskState {
                    state: "dead".into(),
                    failed: true,
                    finished_at: Some(chrono::DateTime::from_timestamp_nanos(failed_at)),
                    ..TaskState::default()
                },
            )]
            .into(),
        );
    });

    // Right after the failure: not yet; a follow-up eval at failure + 30 s.
    let eval = eval_for(
        &state.jobs[&("default".into(), "web".into())],
        "alloc-failure",
    );
    let result = state.run(&eval, failed_at + SECOND, &mut ids);
    assert_eq!(
        result
            .plan
            .placements()
            .filter(|a| a.id != first.id)
            .count(),
        0
    );
    assert_eq!(result.followup_evals.len(), 1);
    let followup = &result.followup_evals[0];
    assert_eq!(followup.triggered_by, "alloc-reschedule");
    assert_eq!(followup.status, "pending");
    assert_eq!(
        followup.status_description,
        "created for delayed rescheduling"
    );
    assert_eq!(
        followup.wait_until.unwrap().timestamp_nanos_opt(),
        Some(failed_at + 30 * SECOND)
    );
    assert_eq!(state.allocs[&first.id].followup_eval_id, followup.id);

    // The follow-up runs: the replacement is placed, away from the node
    // it failed on, with a tracker.
    let result = state.run(followup, failed_at + 30 * SECOND, &mut ids);
    let replacement = result
        .plan
        .placements()
        .find(|a| a.id != first.id)
        .expect("replaced")
        .clone();
    assert_eq!(replacement.previous_allocation, first.id);
    assert_ne!(
        replacement.node_id, first.node_id,
        "the failed node is penalized"
    );
    let tracker = replacement.reschedule_tracker.clone().unwrap();
    let events = tracker.events.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].prev_alloc_id, first.id);
    assert_eq!(events[0].delay, 30 * SECOND);
    let old = &state.allocs[&first.id];
    assert_eq!(
        old.desired_description,
        "alloc was rescheduled because it failed"
    );
    assert_eq!(old.next_allocation, replacement.id);

    // The next failure waits twice as long (exponential).
    let second_failure = failed_at + 100 * SECOND;
    state.update_alloc(&replacement.id, |a| {
        a.client_status = ALLOC_CLIENT_FAILED.into();
        a.modify_time = second_failure;
    });
    let policy = state.jobs[&("default".into(), "web".into())].task_groups[0]
        .reschedule_policy
        .clone()
        .unwrap();
    assert_eq!(
        next_delay(&policy, &state.allocs[&replacement.id]),
        60 * SECOND
    );
}

#[test]
fn reschedule_delay_functions() {
    use caravan_api_types::alloc::{Allocation, RescheduleEvent, RescheduleTracker};
    let with_delays = |delays: &[i64]| Allocation {
        reschedule_tracker: Some(RescheduleTracker {
            events: Some(
                delays
                    .iter()
                    .map(|d| RescheduleEvent {
                        delay: *d,
                        reschedule_time: NOW,
                        ..Default::default()
                    })
                    .collect(),
            ),
            last_reschedule: "ok".into(),
        }),
        modify_time: NOW + 1,
        ..Allocation::default()
    };
    let policy = |function: &str| ReschedulePolicy {
        delay: 5,
        delay_function: function.into(),
        max_delay: 100,
        unlimited: true,
        ..ReschedulePolicy::default()
    };
    assert_eq!(next_delay(&policy("constant"), &with_delays(&[5, 5])), 5);
    assert_eq!(next_delay(&policy("exponential"), &with_delays(&[])), 5);
    assert_eq!(
        next_delay(&policy("exponential"), &with_delays(&[5, 10])),
        20
    );
    assert_eq!(
        next_delay(&policy("exponential"), &with_delays(&[80])),
        100,
        "capped"
    );
    assert_eq!(next_delay(&policy("fibonacci"), &with_delays(&[5])), 5);
    assert_eq!(
        next_delay(&policy("fibonacci"), &with_delays(&[5, 5, 10])),
        15
    );
    assert_eq!(
        next_delay(&policy("fibonacci"), &with_delays(&[100, 5])),
        5,
        "reset starts over"
    );

    // Limited: attempts within the interval run out.
    let limited = ReschedulePolicy {
        attempts: 1,
        interval: 3600,
        delay: 5,
        delay_function: "constant".into(),
        unlimited: false,
        ..ReschedulePolicy::default()
    };
    use caravan_scheduler::reconcile::reschedule::next_reschedule_time;
    assert_eq!(
        next_reschedule_time(&limited, &with_delays(&[])),
        Some(NOW + 1 + 5)
    );
    assert_eq!(next_reschedule_time(&limited, &with_delays(&[5])), None);
}

#[test]
fn completed_batch_allocations_are_not_replaced_failed_ones_are() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let mut work = job("work", "batch", 2);
    work.task_groups[0].reschedule_policy = Some(ReschedulePolicy {
        attempts: 1,
        interval: 24 * 3600 * SECOND,
        delay: 5 * SECOND,
        delay_function: "constant".into(),
        ..ReschedulePolicy::default()
    });
    let eval = state.upsert_job(work);
    state.run(&eval, NOW, &mut ids);
    let allocs = state.live_allocs("work");
    state.update_alloc(&allocs[0].id, |a| {
        a.client_status = ALLOC_CLIENT_COMPLETE.into();
        a.modify_time = NOW;
    });
    state.update_alloc(&allocs[1].id, |a| {
        a.client_status = ALLOC_CLIENT_FAILED.into();
        a.modify_time = NOW;
    });
    let eval = eval_for(
        &state.jobs[&("default".into(), "work".into())],
        "alloc-failure",
    );
    let result = state.run(&eval, NOW + 10 * SECOND, &mut ids);
    let placed: Vec<_> = result
        .plan
        .placements()
        .filter(|a| a.desired_status == "run" && a.previous_allocation == allocs[1].id)
        .collect();
    assert_eq!(placed.len(), 1, "only the failed one is replaced");
    assert_eq!(placed[0].name, allocs[1].name);
    assert!(result.plan.stops().all(|a| a.id == allocs[1].id));

    // The replacement fails too: one attempt per day, so it stays failed.
    let replacement = placed[0].id.clone();
    state.update_alloc(&replacement, |a| {
        a.client_status = ALLOC_CLIENT_FAILED.into();
        a.modify_time = NOW + 20 * SECOND;
    });
    let result = state.run(&eval, NOW + 30 * SECOND, &mut ids);
    assert!(result
        .plan
        .placements()
        .all(|a| a.previous_allocation != replacement));
}

#[test]
fn task_change_is_destructive_constraint_change_is_in_place() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let web = job("web", "service", 2);
    let eval = state.upsert_job(web.clone());
    state.run(&eval, NOW, &mut ids);
    let before: BTreeSet<String> = state
        .live_allocs("web")
        .iter()
        .map(|a| a.id.clone())
        .collect();

    let mut constrained = web.clone();
    constrained.constraints = Some(vec![caravan_api_types::job::Constraint::new(
        "${attr.kernel.name}",
        "=",
        "linux",
    )]);
    let eval = state.upsert_job(constrained.clone());
    let result = state.run(&eval, NOW, &mut ids);
    assert!(result.plan.node_update.is_empty());
    let updated: BTreeSet<String> = result.plan.placements().map(|a| a.id.clone()).collect();
    assert_eq!(updated, before, "same allocations, new job version");
    assert!(state
        .live_allocs("web")
        .iter()
        .all(|a| a.job.as_ref().unwrap().job_modify_index
            == state.jobs[&("default".into(), "web".into())].job_modify_index));

    let mut bigger_task = constrained;
    bigger_task.task_groups[0].tasks[0].resources.memory_mb = 512;
    let eval = state.upsert_job(bigger_task);
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.stops().count(), 2);
    assert!(result
        .plan
        .stops()
        .all(|a| a.desired_description == "alloc is being updated due to job update"));
    assert_eq!(result.plan.placements().count(), 2);
    assert!(result
        .plan
        .placements()
        .all(|a| before.contains(&a.previous_allocation)));
    assert_eq!(
        names(&state, "web"),
        ["web.group[0]", "web.group[1]"].map(String::from).into()
    );
}

#[test]
fn stopped_and_purged_jobs_stop_everything() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let web = job("web", "service", 3);
    let eval = state.upsert_job(web.clone());
    state.run(&eval, NOW, &mut ids);
    let mut stopped = web;
    stopped.stop = true;
    let eval = state.upsert_job(stopped);
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.stops().count(), 3);
    assert_eq!(result.plan.placements().count(), 0);
    assert!(state.live_allocs("web").is_empty());

    let mut state = cluster(1);
    let eval = state.upsert_job(job("gone", "service", 2));
    state.run(&eval, NOW, &mut ids);
    state.jobs.clear();
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.stops().count(), 2);
    assert!(result.plan.job.is_none());
}

#[test]
fn allocations_marked_for_migration_move_off_a_draining_node() {
    let mut state = cluster(2);
    let mut ids = SequentialIds::default();
    let eval = state.upsert_job(job("web", "service", 2));
    state.run(&eval, NOW, &mut ids);
    state.update_node("n0", |n| n.drain_strategy = Some(DrainStrategy::default()));
    let on_n0: Vec<String> = state
        .live_allocs("web")
        .iter()
        .filter(|a| a.node_id == "n0")
        .map(|a| a.id.clone())
        .collect();
    // Draining alone moves nothing; the drainer's Migrate mark does.
    let eval = eval_for(&state.jobs[&("default".into(), "web".into())], "node-drain");
    assert!(state.schedule(&eval, NOW, &mut ids).plan.is_no_op());
    for id in &on_n0 {
        state.update_alloc(id, |a| {
            a.desired_transition = DesiredTransition {
                migrate: Some(true),
                ..Default::default()
            }
        });
    }
    let result = state.run(&eval, NOW, &mut ids);
    assert_eq!(result.plan.stops().count(), on_n0.len());
    assert!(result
        .plan
        .stops()
        .all(|a| a.desired_description == "alloc is being migrated"));
    assert!(result.plan.placements().all(|a| a.node_id == "n1"));
    assert_eq!(state.live_allocs("web").len(), 2);
    assert!(state.live_allocs("web").iter().all(|a| a.node_id == "n1"));
}
