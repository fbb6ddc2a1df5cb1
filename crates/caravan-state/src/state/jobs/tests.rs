use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_RUNNING};
use caravan_api_types::eval::{Evaluation, EVAL_STATUS_COMPLETE, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{Job, Task, TaskGroup, JOB_STATUS_DEAD, JOB_STATUS_PENDING};

use crate::job_commands::{
    AllocClientUpdate, AllocsClientUpdate, JobDeregister, JobRegister, PlanResult,
};
use crate::{new_eval, Command, CommandResult, StateStore, Table, WatchKey, ALLOCS_BY_NODE};

fn job(id: &str, count: i64) -> Job {
    Job {
        id: id.into(),
        name: id.into(),
        datacenters: Some(vec!["*".into()]),
        task_groups: vec![TaskGroup {
            name: "web".into(),
            count,
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

fn register(store: &StateStore, index: u64, job: Job, eval_id: &str) -> CommandResult {
    let eval = new_eval(&job, TRIGGER_JOB_REGISTER, eval_id.into(), 1);
    store.apply(
        index,
        &Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: Some(eval),
            enforce_index: None,
            namespace_checked: false,
        })),
    )
}

fn alloc(id: &str, job: &Job, node: &str, eval: &str) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: job.namespace.clone(),
        eval_id: eval.into(),
        name: format!("{}.web[0]", job.id),
        node_id: node.into(),
        job_id: job.id.clone(),
        task_group: "web".into(),
        desired_status: "run".into(),
        client_status: "pending".into(),
        ..Allocation::default()
    }
}

#[test]
fn registering_versions_a_job_only_when_its_spec_changes() {
    let store = StateStore::new();
    assert_eq!(
        register(&store, 10, job("web", 2), "e1"),
        CommandResult::Done
    );
    let state = store.snapshot();
    let stored = state.job("default", "web").unwrap();
    assert_eq!(
        (stored.version, stored.create_index, stored.job_modify_index),
        (0, 10, 10)
    );
    assert_eq!(stored.status, JOB_STATUS_PENDING);
    let eval = state.eval("e1").unwrap();
    assert_eq!((eval.create_index, eval.job_modify_index), (10, 10));
    let summary = state.job_summary("default", "web").unwrap();
    assert_eq!(summary.summary.keys().collect::<Vec<_>>(), ["web"]);

    // The same spec again: a new eval, no new version.
    register(&store, 11, job("web", 2), "e2");
    let state = store.snapshot();
    assert_eq!(state.job("default", "web").unwrap().version, 0);
    assert_eq!(state.eval("e2").unwrap().job_modify_index, 10);
    assert_eq!(state.job_versions("default", "web").len(), 1);

    for (step, count) in (3..=10).enumerate() {
        register(
            &store,
            20 + step as u64,
            job("web", count),
            &format!("v{step}"),
        );
    }
    let state = store.snapshot();
    let versions: Vec<u64> = state
        .job_versions("default", "web")
        .iter()
        .map(|job| job.version)
        .collect();
    assert_eq!(versions, [8, 7, 6, 5, 4, 3], "newest first, six kept");
    assert_eq!(state.job("default", "web").unwrap().version, 8);
}

#[test]
fn enforce_index_conflicts_use_nomads_texts() {
    let store = StateStore::new();
    let enforce = |index, expected| {
        store.apply(
            index,
            &Command::JobRegister(Box::new(JobRegister {
                job: Arc::new(job("web", 1)),
                eval: None,
                enforce_index: Some(expected),
                namespace_checked: false,
            })),
        )
    };
    assert_eq!(
        enforce(5, 7),
        CommandResult::Conflict("Enforcing job modify index 7: job does not exist".into())
    );
    assert_eq!(enforce(6, 0), CommandResult::Done);
    assert_eq!(
        enforce(7, 0),
        CommandResult::Conflict("Enforcing job modify index 0: job already exists".into())
    );
    assert_eq!(
        enforce(8, 3),
        CommandResult::Conflict(
            "Enforcing job modify index 3: job exists with conflicting job modify index: 6".into()
        )
    );
    assert!(
        store
            .snapshot()
            .job("default", "web")
            .unwrap()
            .job_modify_index
            == 6
    );
}

#[test]
fn a_type_change_is_refused() {
    let store = StateStore::new();
    register(&store, 5, job("web", 1), "e1");
    let batch = Job {
        job_type: "batch".into(),
        ..job("web", 1)
    };
    assert_eq!(
        register(&store, 6, batch, "e2"),
        CommandResult::Refused("cannot update job from type \"service\" to \"batch\"".into())
    );
    assert!(store.snapshot().eval("e2").is_none(), "nothing written");
}

#[test]
fn plans_and_client_updates_drive_status_and_summary() {
    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    let stored = store.snapshot().job("default", "web").unwrap().clone();
    let done = Evaluation {
        status: EVAL_STATUS_COMPLETE.into(),
        ..(**store.snapshot().eval("e1").unwrap()).clone()
    };
    store.apply(
        6,
        &Command::PlanApply(Box::new(PlanResult {
            job: Some(stored.clone()),
            allocs: vec![alloc("a1", &spec, "n1", "e1")],
            stops: vec![],
            evals: vec![done],
            now: 42,
        })),
    );
    let state = store.snapshot();
    let placed = state.alloc("a1").unwrap();
    assert_eq!(
        placed.job.as_ref().unwrap().version,
        0,
        "the plan's job is linked"
    );
    assert_eq!((placed.create_index, placed.create_time), (6, 42));
    assert_eq!(state.job("default", "web").unwrap().status, "running");
    assert_eq!(
        state.job_summary("default", "web").unwrap().summary["web"].starting,
        1
    );
    assert_eq!(state.allocs_by_node("n1").count(), 1);
    assert_eq!(state.allocs_by_job("default", "web").count(), 1);
    assert_eq!(state.allocs_by_eval("e1").count(), 1);

    let report = |index, status: &str| {
        store.apply(
            index,
            &Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
                updates: vec![AllocClientUpdate {
                    id: "a1".into(),
                    client_status: status.into(),
                    client_description: String::new(),
                    task_states: None,
                    deployment_status: None,
                }],
                evals: vec![],
                now: 50,
            })),
        )
    };
    // Placing and running free no room; completing does.
    assert_eq!(store.snapshot().allocs_freed_index(), 0);
    report(7, ALLOC_CLIENT_RUNNING);
    assert_eq!(store.snapshot().allocs_freed_index(), 0);
    let summary = store
        .snapshot()
        .job_summary("default", "web")
        .unwrap()
        .summary["web"]
        .clone();
    assert_eq!((summary.starting, summary.running), (0, 1));
    report(8, ALLOC_CLIENT_COMPLETE);
    let state = store.snapshot();
    assert_eq!(state.allocs_freed_index(), 8);
    let summary = &state.job_summary("default", "web").unwrap().summary["web"];
    assert_eq!((summary.running, summary.complete), (0, 1));
    assert_eq!(state.job("default", "web").unwrap().status, JOB_STATUS_DEAD);
    // A status change moves ModifyIndex, not JobModifyIndex.
    let job = state.job("default", "web").unwrap();
    assert_eq!((job.modify_index, job.job_modify_index), (8, 5));
}

#[test]
fn an_alloc_write_touches_only_its_own_nodes_watch() {
    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    let mine = store.watch_keys(&[WatchKey::Index(Table::Allocs, ALLOCS_BY_NODE, "n1".into())]);
    let other = store.watch_keys(&[WatchKey::Index(Table::Allocs, ALLOCS_BY_NODE, "n2".into())]);
    store.apply(
        6,
        &Command::PlanApply(Box::new(PlanResult {
            job: None,
            allocs: vec![alloc("a1", &spec, "n1", "e1")],
            stops: vec![],
            evals: vec![],
            now: 1,
        })),
    );
    assert!(mine.has_fired());
    assert!(!other.has_fired());
}

#[test]
fn deregister_stops_or_purges() {
    let store = StateStore::new();
    register(&store, 5, job("web", 1), "e1");
    let deregister = |index, purge| {
        store.apply(
            index,
            &Command::JobDeregister(Box::new(JobDeregister {
                namespace: "default".into(),
                job_id: "web".into(),
                purge,
                eval: None,
                submit_time: 9,
            })),
        )
    };
    deregister(6, false);
    let state = store.snapshot();
    let stopped = state.job("default", "web").unwrap();
    assert!(stopped.stop);
    assert_eq!((stopped.version, stopped.job_modify_index), (1, 6));
    assert_eq!(state.job_versions("default", "web").len(), 2);
    deregister(7, true);
    let state = store.snapshot();
    assert!(state.job("default", "web").is_none());
    assert!(state.job_versions("default", "web").is_empty());
    assert!(state.job_summary("default", "web").is_none());
    assert_eq!(
        deregister(8, true),
        CommandResult::Done,
        "an unknown job is no error"
    );
}

#[test]
fn job_tables_survive_a_snapshot_round_trip_with_their_indexes() {
    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    store.apply(
        6,
        &Command::PlanApply(Box::new(PlanResult {
            job: None,
            allocs: vec![alloc("a1", &spec, "n1", "e1")],
            stops: vec![],
            evals: vec![],
            now: 1,
        })),
    );
    let state = store.snapshot();
    let bytes = serde_json::to_vec(&*state).unwrap();
    let restored = StateStore::new();
    restored.restore(&bytes).unwrap();
    let back = restored.snapshot();
    assert_eq!(*back, *state);
    assert_eq!(back.allocs_by_node("n1").count(), 1);
    assert_eq!(back.evals_by_job("default", "web").count(), 1);
}

/// Sections kept in memory, as the snapshot file would hold them.
#[derive(Default)]
struct Sections(Vec<(String, Vec<Vec<u8>>)>);

impl crate::SectionSink for Sections {
    fn section(&mut self, name: &str, _rows: u64) -> std::io::Result<()> {
        self.0.push((name.to_string(), Vec::new()));
        Ok(())
    }
    fn row(&mut self, encoded: &[u8]) -> std::io::Result<()> {
        self.0.last_mut().unwrap().1.push(encoded.to_vec());
        Ok(())
    }
}

#[test]
fn job_tables_survive_the_sectioned_snapshot_and_share_jobs_again() {
    let store = StateStore::new();
    let spec = job("web", 2);
    register(&store, 5, spec.clone(), "e1");
    let stored = store.snapshot().job("default", "web").unwrap().clone();
    let mut second = alloc("a2", &spec, "n2", "e1");
    second.name = "web.web[1]".into();
    store.apply(
        6,
        &Command::PlanApply(Box::new(PlanResult {
            job: Some(stored),
            allocs: vec![alloc("a1", &spec, "n1", "e1"), second],
            stops: vec![],
            evals: vec![],
            now: 1,
        })),
    );
    let state = store.snapshot();
    let mut sections = Sections::default();
    state.write_sections(&mut sections).unwrap();
    let names: Vec<&str> = sections.0.iter().map(|(name, _)| name.as_str()).collect();
    for table in ["jobs", "job_versions", "job_summaries", "evals", "allocs"] {
        assert!(names.contains(&table), "{table} missing from {names:?}");
    }
    let mut restore = crate::StateRestore::new();
    for (name, rows) in &sections.0 {
        let mut rows = rows.iter();
        restore
            .section(name, rows.len() as u64, |buffer| {
                buffer.clear();
                buffer.extend_from_slice(rows.next().unwrap());
                Ok(())
            })
            .unwrap();
    }
    let back = restore.finish();
    assert_eq!(back, *state);
    assert_eq!(back.allocs_by_node("n2").count(), 1);
    let (a1, a2) = (back.alloc("a1").unwrap(), back.alloc("a2").unwrap());
    let version = back.job_version("default", "web", 0).unwrap();
    assert!(Arc::ptr_eq(a1.job.as_ref().unwrap(), version));
    assert!(Arc::ptr_eq(a2.job.as_ref().unwrap(), version));
}

#[test]
fn a_blocked_eval_planned_before_a_node_change_is_pending_at_once() {
    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    let node = caravan_api_types::node::Node {
        id: "n1".into(),
        secret_id: "s".into(),
        status: "ready".into(),
        ..Default::default()
    };
    store.apply(
        6,
        &Command::NodeRegister {
            node: Box::new(node),
            now: chrono::Utc::now(),
        },
    );
    let blocked = |id: &str, snapshot_index: u64| Evaluation {
        status: caravan_api_types::eval::EVAL_STATUS_BLOCKED.into(),
        snapshot_index,
        ..new_eval(&spec, "queued-allocs", id.into(), 1)
    };
    // Planned on index 5, before the node arrived: its arrival woke no
    // blocked eval, so this one must not wait for the next node change.
    store.apply(
        7,
        &Command::EvalsUpsert {
            evals: vec![blocked("b1", 5)],
        },
    );
    // Planned with the node in view: it waits.
    store.apply(
        8,
        &Command::EvalsUpsert {
            evals: vec![blocked("b2", 7)],
        },
    );
    let state = store.snapshot();
    assert_eq!(state.eval("b1").unwrap().status, "pending");
    assert_eq!(state.eval("b2").unwrap().status, "blocked");
}

fn blocked_eval(spec: &Job, id: &str, snapshot_index: u64) -> Evaluation {
    Evaluation {
        status: caravan_api_types::eval::EVAL_STATUS_BLOCKED.into(),
        snapshot_index,
        ..new_eval(spec, "queued-allocs", id.into(), 1)
    }
}

#[test]
fn a_job_keeps_one_blocked_eval_the_newest() {
    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    let upsert = |index, evals| store.apply(index, &Command::EvalsUpsert { evals });
    upsert(6, vec![blocked_eval(&spec, "b1", 5)]);
    // A newer blocked eval replaces the older one.
    upsert(7, vec![blocked_eval(&spec, "b2", 6)]);
    let state = store.snapshot();
    let b1 = state.eval("b1").unwrap();
    assert_eq!(b1.status, "canceled");
    assert_eq!(
        b1.status_description,
        "existing blocked evaluation exists for job \"web\""
    );
    assert_eq!(b1.modify_index, 7);
    assert_eq!(state.eval("b2").unwrap().status, "blocked");
    // An existing eval blocked again while a newer one is kept is the one
    // canceled (newness is the later of creation and snapshot).
    let mut again = (**state.eval("b1").unwrap()).clone();
    again.status = "blocked".into();
    again.snapshot_index = 5;
    upsert(8, vec![again]);
    let state = store.snapshot();
    assert_eq!(state.eval("b1").unwrap().status, "canceled");
    assert_eq!(state.eval("b2").unwrap().status, "blocked");
    assert_eq!(
        state
            .evals_with_status("blocked")
            .map(|eval| eval.id.as_str())
            .collect::<Vec<_>>(),
        ["b2"]
    );
}

#[test]
fn an_eval_that_placed_everything_cancels_the_jobs_blocked_ones() {
    let store = StateStore::new();
    let spec = job("web", 1);
    let other = job("api", 1);
    register(&store, 5, spec.clone(), "e1");
    register(&store, 6, other.clone(), "e2");
    let upsert = |index, evals| store.apply(index, &Command::EvalsUpsert { evals });
    upsert(
        7,
        vec![blocked_eval(&spec, "b1", 5), blocked_eval(&other, "b2", 6)],
    );
    // A complete eval that still failed to place keeps the blocked one.
    let mut failed = new_eval(&spec, "node-update", "e3".into(), 2);
    failed.status = EVAL_STATUS_COMPLETE.into();
    failed.failed_tg_allocs = Some(
        [(
            "web".to_string(),
            caravan_api_types::eval::AllocMetric::default(),
        )]
        .into(),
    );
    upsert(8, vec![failed]);
    assert_eq!(store.snapshot().eval("b1").unwrap().status, "blocked");
    let mut placed = new_eval(&spec, "node-update", "e4".into(), 2);
    placed.status = EVAL_STATUS_COMPLETE.into();
    upsert(9, vec![placed]);
    let state = store.snapshot();
    let b1 = state.eval("b1").unwrap();
    assert_eq!(b1.status, "canceled");
    assert_eq!(b1.status_description, "evaluation \"e4\" successful");
    // Another job's blocked eval is not touched.
    assert_eq!(state.eval("b2").unwrap().status, "blocked");
}

/// A worker copies an allocation from its snapshot, the client reports it
/// failed, then the worker's plan updates it in place: the client's report
/// stands (Nomad's `upsertAllocsImpl` keeps the stored client fields of an
/// existing allocation unless the plan marks it lost or unknown).
#[test]
fn a_plan_update_keeps_what_the_client_reported_after_the_snapshot() {
    use caravan_api_types::alloc::{TaskState, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_LOST};

    let store = StateStore::new();
    let spec = job("web", 1);
    register(&store, 5, spec.clone(), "e1");
    let stored = store.snapshot().job("default", "web").unwrap().clone();
    let plan = |index, allocs| {
        store.apply(
            index,
            &Command::PlanApply(Box::new(PlanResult {
                job: Some(stored.clone()),
                allocs,
                stops: vec![],
                evals: vec![],
                now: index as i64,
            })),
        )
    };
    plan(6, vec![alloc("a1", &spec, "n1", "e1")]);
    let report = |index, status: &str, state: &str| {
        let task = TaskState {
            state: state.into(),
            failed: status == ALLOC_CLIENT_FAILED,
            ..TaskState::default()
        };
        store.apply(
            index,
            &Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
                updates: vec![AllocClientUpdate {
                    id: "a1".into(),
                    client_status: status.into(),
                    client_description: format!("{status} by the client"),
                    task_states: Some([("app".to_string(), task)].into()),
                    deployment_status: None,
                }],
                evals: vec![],
                now: index as i64,
            })),
        )
    };
    report(7, ALLOC_CLIENT_RUNNING, "running");
    // The worker's snapshot: a1 running.
    let mut copy = (**store.snapshot().alloc("a1").unwrap()).clone();
    copy.job = None;
    copy.eval_id = "e2".into();
    report(8, ALLOC_CLIENT_FAILED, "dead");
    plan(9, vec![copy.clone()]);

    let state = store.snapshot();
    let a1 = state.alloc("a1").unwrap();
    assert_eq!(a1.eval_id, "e2", "the plan's update is applied");
    assert_eq!(a1.modify_index, 9);
    assert_eq!(a1.client_status, ALLOC_CLIENT_FAILED);
    assert_eq!(a1.client_description, "failed by the client");
    let task = &a1.task_states.as_ref().unwrap()["app"];
    assert_eq!((task.state.as_str(), task.failed), ("dead", true));
    let summary = &state.job_summary("default", "web").unwrap().summary["web"];
    assert_eq!((summary.running, summary.failed), (0, 1));

    // A plan that marks an allocation lost is the one exception.
    plan(
        10,
        vec![Allocation {
            client_status: ALLOC_CLIENT_LOST.into(),
            ..copy
        }],
    );
    assert_eq!(
        store.snapshot().alloc("a1").unwrap().client_status,
        ALLOC_CLIENT_LOST
    );
}
