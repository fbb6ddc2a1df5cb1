//! The broker's queue, the node reactions' coalescing and the cancelling
//! of evaluations a plan made redundant, on a real state store.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::{Evaluation, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{Job, Task, TaskGroup};
use caravan_api_types::node::Node;
use caravan_state::job_commands::{JobRegister, PlanResult};
use caravan_state::{new_eval, ns_key, Command, State, StateStore};

use super::{ready, superseded, NodeReactions, SchedulerStats, CANCELED_DESCRIPTION};

fn job(id: &str, job_type: &str) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        job_type: job_type.into(),
        datacenters: Some(vec!["*".into()]),
        task_groups: vec![TaskGroup {
            name: "web".into(),
            count: 1,
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

/// A store with a ready node `n1` and three service jobs `a`, `b`, `c`,
/// each running one allocation on it; each job's register eval complete.
fn cluster() -> (StateStore, u64) {
    let store = StateStore::new();
    let node = Node {
        id: "n1".into(),
        secret_id: "s".into(),
        status: "ready".into(),
        scheduling_eligibility: "eligible".into(),
        ..Node::default()
    };
    store.apply(
        1,
        &Command::NodeRegister {
            node: Box::new(node),
            now: chrono::Utc::now(),
        },
    );
    let mut index = 1;
    for id in ["a", "b", "c"] {
        let spec = job(id, "service");
        index += 1;
        let mut eval = new_eval(&spec, TRIGGER_JOB_REGISTER, format!("reg-{id}"), 1);
        store.apply(
            index,
            &Command::JobRegister(Box::new(JobRegister {
                job: Arc::new(spec.clone()),
                eval: Some(eval.clone()),
                enforce_index: None,
                namespace_checked: false,
            })),
        );
        eval.status = "complete".into();
        index += 1;
        store.apply(
            index,
            &Command::PlanApply(Box::new(PlanResult {
                job: Some(Arc::new(spec.clone())),
                allocs: vec![Allocation {
                    id: format!("alloc-{id}"),
                    namespace: "default".into(),
                    eval_id: eval.id.clone(),
                    name: format!("{id}.web[0]"),
                    node_id: "n1".into(),
                    job_id: id.into(),
                    task_group: "web".into(),
                    desired_status: "run".into(),
                    client_status: "running".into(),
                    ..Allocation::default()
                }],
                stops: Vec::new(),
                evals: vec![eval],
                now: 1,
            })),
        );
    }
    (store, index)
}

fn pending(store: &StateStore, index: u64, id: &str, job_id: &str) {
    let eval = new_eval(&job(job_id, "service"), "job-register", id.into(), 2);
    store.apply(index, &Command::EvalsUpsert { evals: vec![eval] });
}

fn node_down(store: &StateStore, index: u64) {
    store.apply(
        index,
        &Command::NodeUpdateStatus {
            node_id: "n1".into(),
            status: "down".into(),
            event: None,
            now: chrono::Utc::now(),
        },
    );
}

fn new_evals(command: Option<Command>) -> Vec<Evaluation> {
    match command {
        Some(Command::EvalsUpsert { evals }) => evals,
        None => Vec::new(),
        Some(other) => panic!("unexpected command {other:?}"),
    }
}

fn jobs_of(evals: &[Evaluation]) -> Vec<&str> {
    let mut jobs: Vec<&str> = evals.iter().map(|eval| eval.job_id.as_str()).collect();
    jobs.sort();
    jobs
}

#[test]
fn a_node_going_down_gives_one_eval_per_job_not_already_waiting() {
    let (store, index) = cluster();
    let mut reactions = NodeReactions::new(&store.snapshot());
    // `a` has an evaluation waiting its turn: it will plan on a state
    // that holds the node change, so it needs no second one. `b` has one
    // being planned now, on an older snapshot: it needs a new one.
    pending(&store, index + 1, "wait-a", "a");
    pending(&store, index + 2, "plan-b", "b");
    node_down(&store, index + 3);
    let in_flight = BTreeSet::from([ns_key("default", "b")]);
    let evals =
        new_evals(reactions.react(&store.snapshot(), &in_flight, &SchedulerStats::default()));
    assert_eq!(jobs_of(&evals), ["b", "c"]);
    for eval in &evals {
        assert_eq!(eval.triggered_by, "node-update");
        assert_eq!(eval.node_id, "n1");
        assert_eq!(eval.status, "pending");
    }
    // Nothing changed since: nothing more is written.
    reactions.committed();
    assert!(reactions
        .react(&store.snapshot(), &in_flight, &SchedulerStats::default())
        .is_none());
}

#[test]
fn flapping_nodes_do_not_pile_up_evaluations() {
    let (store, mut index) = cluster();
    let mut reactions = NodeReactions::new(&store.snapshot());
    let mut written = 0;
    for _ in 0..10 {
        index += 1;
        node_down(&store, index);
        let evals = new_evals(reactions.react(
            &store.snapshot(),
            &BTreeSet::new(),
            &SchedulerStats::default(),
        ));
        written += evals.len();
        index += 1;
        store.apply(index, &Command::EvalsUpsert { evals });
        reactions.committed();
        index += 1;
        store.apply(
            index,
            &Command::NodeUpdateStatus {
                node_id: "n1".into(),
                status: "ready".into(),
                event: None,
                now: chrono::Utc::now(),
            },
        );
        written += new_evals(reactions.react(
            &store.snapshot(),
            &BTreeSet::new(),
            &SchedulerStats::default(),
        ))
        .len();
    }
    // Ten flaps while no worker ran: one evaluation per job, not ten.
    assert_eq!(written, 3);
    assert_eq!(store.snapshot().evals_with_status("pending").count(), 3);
}

#[test]
fn planning_cancels_the_jobs_other_waiting_evaluations_but_not_delayed_ones() {
    let (store, index) = cluster();
    pending(&store, index + 1, "first", "a");
    pending(&store, index + 2, "second", "a");
    pending(&store, index + 3, "other-job", "b");
    let mut delayed = new_eval(&job("a", "service"), "alloc-failure", "later".into(), 2);
    delayed.wait_until = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    store.apply(
        index + 4,
        &Command::EvalsUpsert {
            evals: vec![delayed],
        },
    );
    let state: Arc<State> = store.snapshot();
    let planned = (**state.eval("first").unwrap()).clone();
    let canceled = superseded(&state, &planned, super::now_nanos());
    assert_eq!(
        canceled.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["second"]
    );
    assert_eq!(canceled[0].status, "canceled");
    assert_eq!(canceled[0].status_description, CANCELED_DESCRIPTION);
}

#[test]
fn the_queue_takes_one_eval_per_job_best_first_of_enabled_types() {
    let (store, index) = cluster();
    pending(&store, index + 1, "a-1", "a");
    pending(&store, index + 2, "a-2", "a");
    let mut urgent = new_eval(&job("b", "service"), "job-register", "b-1".into(), 2);
    urgent.priority = 90;
    let batch = new_eval(&job("c", "batch"), "job-register", "c-1".into(), 2);
    store.apply(
        index + 3,
        &Command::EvalsUpsert {
            evals: vec![urgent, batch],
        },
    );
    let state = store.snapshot();
    let now = super::now_nanos();
    let ids = |evals: Vec<Evaluation>| evals.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ready(&state, &BTreeSet::new(), &[], now)),
        ["b-1", "a-1", "c-1"]
    );
    let in_flight = BTreeSet::from([ns_key("default", "b")]);
    assert_eq!(ids(ready(&state, &in_flight, &[], now)), ["a-1", "c-1"]);
    assert_eq!(
        ids(ready(&state, &BTreeSet::new(), &["batch".to_string()], now)),
        ["c-1"]
    );
}

#[test]
fn a_new_term_writes_what_a_down_node_still_needs_and_a_failed_write_is_redone() {
    let (store, index) = cluster();
    // The node went down under the previous leader, which fell before
    // writing its evaluations: the new term's first reaction writes them.
    node_down(&store, index + 1);
    let mut reactions = NodeReactions::new(&store.snapshot());
    let stats = SchedulerStats::default();
    let evals = new_evals(reactions.react(&store.snapshot(), &BTreeSet::new(), &stats));
    assert_eq!(jobs_of(&evals), ["a", "b", "c"]);
    // That write failed (not committed): the same change is reacted to
    // again rather than forgotten.
    let again = new_evals(reactions.react(&store.snapshot(), &BTreeSet::new(), &stats));
    assert_eq!(jobs_of(&again), ["a", "b", "c"]);
    store.apply(index + 2, &Command::EvalsUpsert { evals: again });
    reactions.committed();
    assert!(reactions
        .react(&store.snapshot(), &BTreeSet::new(), &stats)
        .is_none());
}

#[test]
fn a_purged_node_gives_its_jobs_evaluations() {
    let (store, index) = cluster();
    let mut reactions = NodeReactions::new(&store.snapshot());
    store.apply(
        index + 1,
        &Command::NodeDeregister {
            node_ids: vec!["n1".into()],
        },
    );
    let evals = new_evals(reactions.react(
        &store.snapshot(),
        &BTreeSet::new(),
        &SchedulerStats::default(),
    ));
    assert_eq!(jobs_of(&evals), ["a", "b", "c"]);
}

#[test]
fn a_partly_refused_plan_keeps_the_follow_ups_its_commits_point_at() {
    let followup = |id: &str| new_eval(&job("a", "service"), "alloc-failure", id.into(), 2);
    let committed = PlanResult {
        allocs: vec![Allocation {
            id: "x".into(),
            followup_eval_id: "f1".into(),
            ..Allocation::default()
        }],
        ..PlanResult::default()
    };
    let kept = super::referenced_followups(&committed, &[followup("f1"), followup("f2")]);
    assert_eq!(
        kept.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["f1"]
    );
}
