use std::collections::BTreeMap;
use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, TaskState};
use caravan_api_types::eval::{EVAL_STATUS_PENDING, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{Job, ReschedulePolicy, Task, TaskGroup};
use caravan_rpc::{AllocUpdate, RpcError};
use caravan_state::job_commands::{JobDeregister, JobRegister, PlanResult};
use caravan_state::{new_eval, Command, StateStore};

use super::{client_update_command, node_allocs_reply};

fn job(id: &str, reschedule: Option<ReschedulePolicy>) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        job_type: "service".into(),
        priority: 70,
        task_groups: vec![TaskGroup {
            name: "web".into(),
            count: 2,
            reschedule_policy: reschedule,
            tasks: vec![Task {
                name: "app".into(),
                driver: "raw_exec".into(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

fn alloc(id: &str, job: &Job, node: &str, index: usize) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: job.namespace.clone(),
        eval_id: "e1".into(),
        name: format!("{}.web[{index}]", job.id),
        node_id: node.into(),
        job_id: job.id.clone(),
        task_group: "web".into(),
        desired_status: "run".into(),
        client_status: "pending".into(),
        ..Allocation::default()
    }
}

/// A store holding `spec` (registered at index 5) and `allocs` placed at
/// index 6.
fn store_with(spec: &Job, allocs: Vec<Allocation>) -> StateStore {
    let store = StateStore::new();
    store.apply(
        5,
        &Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(spec.clone()),
            eval: Some(new_eval(spec, TRIGGER_JOB_REGISTER, "e1".into(), 1)),
            enforce_index: None,
            namespace_checked: false,
        })),
    );
    let stored = store
        .snapshot()
        .job(&spec.namespace, &spec.id)
        .unwrap()
        .clone();
    store.apply(
        6,
        &Command::PlanApply(Box::new(PlanResult {
            job: Some(stored),
            allocs,
            stops: vec![],
            evals: vec![],
            now: 10,
        })),
    );
    store
}

fn report(id: &str, status: &str) -> AllocUpdate {
    AllocUpdate {
        id: id.into(),
        client_status: status.into(),
        client_description: String::new(),
        task_states: BTreeMap::from([(
            "app".to_string(),
            TaskState {
                state: "dead".into(),
                failed: status == "failed",
                ..TaskState::default()
            },
        )]),
        deployment_status: None,
    }
}

fn ids() -> impl FnMut() -> String {
    let mut next = 0;
    move || {
        next += 1;
        format!("eval-{next}")
    }
}

#[test]
fn a_nodes_reply_lists_all_its_allocs_and_sends_only_the_unseen_in_full() {
    let spec = job("web", None);
    let store = store_with(
        &spec,
        vec![
            alloc("a1", &spec, "n1", 0),
            alloc("a2", &spec, "n1", 1),
            alloc("b1", &spec, "n2", 0),
        ],
    );
    let reply = node_allocs_reply(&store.snapshot(), "n1", 0);
    assert_eq!(reply.index, 6);
    assert_eq!(
        reply.allocs,
        BTreeMap::from([("a1".to_string(), 6), ("a2".to_string(), 6)])
    );
    assert_eq!(reply.changed.len(), 2);
    assert!(
        reply.changed.iter().all(|alloc| alloc.job.is_some()),
        "a client needs the job to run an allocation"
    );

    // The client's own report moves the index (ModifyIndex), not the
    // allocation's AllocModifyIndex: nothing new to send in full.
    let command = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "running")],
        20,
        ids(),
    )
    .command;
    store.apply(7, &Command::AllocsClientUpdate(Box::new(command)));
    let reply = node_allocs_reply(&store.snapshot(), "n1", 6);
    assert_eq!(reply.index, 7);
    assert!(reply.changed.is_empty());
    assert_eq!(reply.allocs["a1"], 6);

    // A node with nothing answers the allocations table's index (Nomad's
    // answer), and an empty state a usable one.
    assert_eq!(node_allocs_reply(&store.snapshot(), "n3", 0).index, 7);
    assert_eq!(
        node_allocs_reply(&StateStore::new().snapshot(), "n3", 0).index,
        1
    );
}

#[test]
fn a_removed_alloc_moves_the_nodes_index_past_what_the_client_has() {
    let spec = job("web", None);
    let store = store_with(
        &spec,
        vec![alloc("a1", &spec, "n1", 0), alloc("a2", &spec, "n1", 1)],
    );
    // The client reports a1 running (index 7) and has seen that answer.
    let command = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "complete")],
        20,
        ids(),
    )
    .command;
    store.apply(7, &Command::AllocsClientUpdate(Box::new(command)));
    let seen = node_allocs_reply(&store.snapshot(), "n1", 0).index;
    assert_eq!(seen, 7);

    // a1 is garbage collected: a2, the one left, still has ModifyIndex 6,
    // but the answer moves past what the client has, without a1.
    store.apply(
        8,
        &Command::EvalsDelete {
            evals: vec![],
            allocs: vec!["a1".into()],
        },
    );
    let reply = node_allocs_reply(&store.snapshot(), "n1", seen);
    assert!(reply.index > seen, "{} <= {seen}", reply.index);
    assert_eq!(reply.allocs.keys().collect::<Vec<_>>(), ["a2"]);
    assert!(reply.changed.is_empty());

    // And once the last one goes, still forward.
    store.apply(
        9,
        &Command::EvalsDelete {
            evals: vec![],
            allocs: vec!["a2".into()],
        },
    );
    let reply = node_allocs_reply(&store.snapshot(), "n1", 8);
    assert_eq!(reply.index, 9);
    assert!(reply.allocs.is_empty());
}

#[test]
fn reports_for_another_nodes_alloc_or_with_a_bad_status_are_left_out() {
    let spec = job("web", None);
    let store = store_with(
        &spec,
        vec![
            alloc("a1", &spec, "n1", 0),
            alloc("a2", &spec, "n1", 1),
            alloc("b1", &spec, "n2", 0),
        ],
    );
    let state = store.snapshot();
    // The node's own reports still apply; only the foreign one and the
    // one with a status no client has are refused.
    let checked = client_update_command(
        &state,
        "n1",
        vec![
            report("a1", "running"),
            report("b1", "complete"),
            report("a2", "exploded"),
        ],
        20,
        ids(),
    );
    let applied: Vec<&str> = checked
        .command
        .updates
        .iter()
        .map(|update| update.id.as_str())
        .collect();
    assert_eq!(applied, ["a1"]);
    let refused: Vec<(&str, &RpcError)> = checked
        .refused
        .iter()
        .map(|refused| (refused.id.as_str(), &refused.reason))
        .collect();
    assert!(
        matches!(refused[..], [("b1", RpcError::Invalid(ref text)), ("a2", RpcError::Invalid(_))] if text.contains("not on node")),
        "{refused:?}"
    );
    store.apply(7, &Command::AllocsClientUpdate(Box::new(checked.command)));
    let state = store.snapshot();
    assert_eq!(state.alloc("a1").unwrap().client_status, "running");
    assert_eq!(state.alloc("a2").unwrap().client_status, "pending");
    assert_eq!(state.alloc("b1").unwrap().client_status, "pending");
    // An allocation that was garbage collected is skipped, not refused.
    let gone = client_update_command(
        &state,
        "n1",
        vec![report("gone", "complete"), report("a1", "complete")],
        20,
        ids(),
    );
    assert!(gone.refused.is_empty());
    let gone = gone.command;
    assert_eq!(gone.updates.len(), 1);
    assert_eq!(gone.updates[0].id, "a1");
    assert!(gone.evals.is_empty(), "completion asks for no evaluation");
}

#[test]
fn failures_get_one_reschedule_eval_per_job_that_may_reschedule() {
    let policy = ReschedulePolicy::default_service();
    let spec = job("web", Some(policy));
    let store = store_with(
        &spec,
        vec![alloc("a1", &spec, "n1", 0), alloc("a2", &spec, "n1", 1)],
    );
    let command = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "failed"), report("a2", "failed")],
        20,
        ids(),
    )
    .command;
    assert_eq!(command.evals.len(), 1, "one per job: {:?}", command.evals);
    let eval = &command.evals[0];
    assert_eq!(eval.id, "eval-1");
    assert_eq!(eval.triggered_by, "alloc-failure");
    assert_eq!(
        (eval.job_id.as_str(), eval.priority, eval.eval_type.as_str()),
        ("web", 70, "service")
    );
    assert_eq!(eval.status, EVAL_STATUS_PENDING);
    assert!(command.updates[0].task_states.is_some());

    // Applied, the allocations are failed with their task states and the
    // evaluation waits for the scheduler.
    store.apply(7, &Command::AllocsClientUpdate(Box::new(command)));
    let state = store.snapshot();
    let failed = state.alloc("a1").unwrap();
    assert_eq!(failed.client_status, "failed");
    assert_eq!(
        failed.modify_time, 20,
        "the failure time the reconciler reads"
    );
    assert!(failed.task_states.as_ref().unwrap()["app"].failed);
    assert_eq!(state.eval("eval-1").unwrap().status, EVAL_STATUS_PENDING);

    // Reported failed again (a client retrying): no second evaluation.
    let again =
        client_update_command(&state, "n1", vec![report("a1", "failed")], 30, ids()).command;
    assert!(again.evals.is_empty());
}

#[test]
fn no_reschedule_eval_without_a_policy_or_for_a_stopped_job() {
    let spec = job("web", None);
    let store = store_with(&spec, vec![alloc("a1", &spec, "n1", 0)]);
    let none = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "failed")],
        20,
        ids(),
    )
    .command;
    assert!(none.evals.is_empty(), "no policy, no reschedule");

    let no_attempts = ReschedulePolicy {
        attempts: 0,
        unlimited: false,
        ..ReschedulePolicy::default_service()
    };
    let spec = job("web", Some(no_attempts));
    let store = store_with(&spec, vec![alloc("a1", &spec, "n1", 0)]);
    let exhausted = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "failed")],
        20,
        ids(),
    )
    .command;
    assert!(exhausted.evals.is_empty(), "the policy allows no attempt");

    let spec = job("web", Some(ReschedulePolicy::default_service()));
    let store = store_with(&spec, vec![alloc("a1", &spec, "n1", 0)]);
    store.apply(
        7,
        &Command::JobDeregister(Box::new(JobDeregister {
            namespace: spec.namespace.clone(),
            job_id: spec.id.clone(),
            purge: false,
            eval: None,
            submit_time: 1,
        })),
    );
    let stopped = client_update_command(
        &store.snapshot(),
        "n1",
        vec![report("a1", "failed")],
        20,
        ids(),
    )
    .command;
    assert!(stopped.evals.is_empty(), "a stopped job is not rescheduled");
}
