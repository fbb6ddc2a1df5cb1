//! Garbage collection's rules against the real state machine and
//! scheduler: jobs run to where the rule matters, time moves on, one
//! collection is decided and its writes applied.

use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::acl::AclToken;
use caravan_api_types::alloc::{ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_RUNNING};
use caravan_api_types::eval::{EVAL_STATUS_PENDING, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{Job, JOB_STATUS_DEAD};
use caravan_api_types::node::NODE_STATUS_DOWN;
use caravan_scheduler::{harness, Context, SequentialIds};
use caravan_state::job_commands::{
    AllocClientUpdate, AllocsClientUpdate, Collected, GcCollect, JobCollected, JobDeregister,
    JobRegister,
};
use caravan_state::{new_eval, Command, State, StateStore};
use chrono::{DateTime, Utc};

use super::decide::{KEPT_BATCH_EVAL_LIVE, KEPT_EVAL_ALLOCS, KEPT_JOB_YOUNG, KEPT_NODE_ALLOCS};
use super::{commands, decide, Thresholds, Verdict};
use crate::leader::plan_apply::{check, command};
use crate::leader::scheduling::SnapshotView;

const NS: &str = "default";
const HOUR: Duration = Duration::from_secs(3600);

struct World {
    store: StateStore,
    index: u64,
    ids: SequentialIds,
    now: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        let mut world = World {
            store: StateStore::new(),
            index: 0,
            ids: SequentialIds::default(),
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let node = harness::node("n1", "dc1", 8000, 16384);
        let now = world.now;
        world.apply(Command::NodeRegister {
            node: Box::new(node),
            now,
        });
        world
    }

    fn apply(&mut self, command: Command) {
        self.index += 1;
        self.store.apply(self.index, &command);
    }

    fn state(&self) -> Arc<State> {
        self.store.snapshot()
    }

    fn nanos(&self) -> i64 {
        self.now.timestamp_nanos_opt().unwrap()
    }

    fn later(&mut self, by: Duration) {
        self.now += chrono::Duration::from_std(by).unwrap();
    }

    /// Registers `job` (its next version if it exists) and plans it.
    fn register(&mut self, mut job: Job) {
        job.namespace = NS.into();
        job.submit_time = self.nanos();
        let eval_id = format!("eval-{}", self.index + 1);
        let eval = new_eval(&job, TRIGGER_JOB_REGISTER, eval_id, self.nanos());
        self.apply(Command::JobRegister(Box::new(JobRegister {
            job: Arc::new(job),
            eval: Some(eval),
            enforce_index: None,
            namespace_checked: false,
        })));
        self.run_evals();
    }

    fn stop(&mut self, job_id: &str) {
        let job = self.state().job(NS, job_id).cloned().unwrap();
        let eval = new_eval(
            &job,
            "job-deregister",
            format!("stop-{job_id}"),
            self.nanos(),
        );
        self.apply(Command::JobDeregister(Box::new(JobDeregister {
            namespace: NS.into(),
            job_id: job_id.into(),
            purge: false,
            eval: Some(eval),
            submit_time: self.nanos(),
        })));
        self.run_evals();
    }

    fn run_evals(&mut self) {
        let state = self.state();
        let pending: Vec<_> = state
            .evals()
            .filter(|eval| eval.status == EVAL_STATUS_PENDING)
            .map(|eval| eval.as_ref().clone())
            .collect();
        for eval in pending {
            let state = self.state();
            let view = SnapshotView(Arc::clone(&state));
            let now = self.nanos();
            let mut ctx = Context {
                eval: &eval,
                now,
                ids: &mut self.ids,
            };
            let result = caravan_scheduler::schedule(&view, &mut ctx).unwrap();
            let checked = check(&state, &result.plan, now);
            let mut evals = vec![result.eval.clone()];
            evals.extend(result.blocked_evals.iter().cloned());
            self.apply(command(checked.result, evals));
        }
    }

    /// The client reports every allocation of `job_id` in `status`
    /// (stopped ones complete).
    fn report(&mut self, job_id: &str, status: &str) {
        self.report_some(job_id, status, usize::MAX);
    }

    /// [`Self::report`] for at most `count` allocations.
    fn report_some(&mut self, job_id: &str, status: &str, count: usize) {
        let state = self.state();
        let updates = state
            .allocs_by_job(NS, job_id)
            .filter(|alloc| !alloc.client_terminal())
            .take(count)
            .map(|alloc| AllocClientUpdate {
                id: alloc.id.clone(),
                client_status: if alloc.server_terminal() {
                    ALLOC_CLIENT_COMPLETE.into()
                } else {
                    status.into()
                },
                client_description: String::new(),
                task_states: None,
                deployment_status: None,
            })
            .collect();
        let now = self.nanos();
        self.apply(Command::AllocsClientUpdate(Box::new(AllocsClientUpdate {
            updates,
            evals: Vec::new(),
            now,
        })));
    }

    /// One collection with Nomad's default thresholds, applied.
    fn collect(&mut self) -> Verdict {
        self.collect_with(&Thresholds::default())
    }

    fn collect_with(&mut self, thresholds: &Thresholds) -> Verdict {
        let verdict = decide(&self.state(), self.now, thresholds);
        for command in commands(verdict.collect.clone()) {
            self.apply(command);
        }
        verdict
    }
}

fn batch(id: &str) -> Job {
    harness::job(id, "batch", 2)
}

#[test]
fn a_finished_batch_job_goes_whole_once_past_the_job_threshold() {
    let mut world = World::new();
    world.register(batch("report"));
    world.report("report", ALLOC_CLIENT_COMPLETE);
    assert_eq!(
        world.state().job(NS, "report").unwrap().status,
        JOB_STATUS_DEAD
    );
    world.later(HOUR);
    let verdict = world.collect();
    assert_eq!(verdict.kept.get(KEPT_JOB_YOUNG), Some(&1), "{verdict:?}");
    assert!(world.state().job(NS, "report").is_some());
    world.later(4 * HOUR);
    world.collect();
    let state = world.state();
    assert!(state.job(NS, "report").is_none());
    assert_eq!(state.evals_by_job(NS, "report").count(), 0);
    assert_eq!(state.allocs_by_job(NS, "report").count(), 0);
    assert!(state.job_versions(NS, "report").is_empty());
    assert!(state.job_summary(NS, "report").is_none());
}

#[test]
fn a_running_batch_job_keeps_its_current_evaluation_and_loses_only_older_versions() {
    let mut world = World::new();
    world.register(batch("etl"));
    world.report("etl", ALLOC_CLIENT_COMPLETE);
    // A new version that runs: the old version's allocations may go, and
    // the evaluation that made only those; the current one stays (or the
    // scheduler would run the work again).
    let mut second = batch("etl");
    second.meta = Some([("v".to_string(), "2".to_string())].into());
    world.register(second);
    world.report("etl", ALLOC_CLIENT_RUNNING);
    world.later(48 * HOUR);
    let before: Vec<_> = world
        .state()
        .allocs_by_job(NS, "etl")
        .map(|alloc| (alloc.id.clone(), alloc.client_status.clone()))
        .collect();
    let verdict = world.collect();
    assert!(
        verdict.kept.contains_key(KEPT_BATCH_EVAL_LIVE),
        "{verdict:?}"
    );
    let state = world.state();
    let evals: Vec<_> = state.evals_by_job(NS, "etl").collect();
    assert_eq!(evals.len(), 1, "{evals:?}");
    assert!(
        state.allocs_by_eval(&evals[0].id).count() == 2,
        "the current version's evaluation stays"
    );
    let left: Vec<_> = state.allocs_by_job(NS, "etl").collect();
    assert!(left
        .iter()
        .all(|alloc| alloc.client_status == ALLOC_CLIENT_RUNNING));
    assert_eq!(left.len(), 2, "before: {before:?}");
    assert_eq!(state.job(NS, "etl").unwrap().status, "running");
}

#[test]
fn a_failed_allocation_waiting_to_be_rescheduled_stays_and_a_running_one_always_does() {
    let mut world = World::new();
    // One of two failed (the job runs on): under an unlimited policy it
    // waits for its replacement whatever its age.
    let mut job = harness::job("web", "service", 2);
    job.task_groups[0].reschedule_policy = Some(Default::default());
    if let Some(policy) = job.task_groups[0].reschedule_policy.as_mut() {
        policy.unlimited = true;
    }
    world.register(job);
    world.report_some("web", ALLOC_CLIENT_FAILED, 1);
    world.report("web", ALLOC_CLIENT_RUNNING);
    world.register(harness::job("api", "service", 1));
    world.report("api", ALLOC_CLIENT_RUNNING);
    world.later(48 * HOUR);
    let verdict = world.collect();
    assert!(verdict.kept.contains_key(KEPT_EVAL_ALLOCS), "{verdict:?}");
    let state = world.state();
    assert_eq!(state.allocs_by_job(NS, "web").count(), 2);
    assert_eq!(state.allocs_by_job(NS, "api").count(), 1);
    assert_eq!(state.evals_by_job(NS, "api").count(), 1);
}

#[test]
fn a_stopped_service_job_goes_and_a_forced_collection_ignores_age() {
    let mut world = World::new();
    world.register(harness::job("web", "service", 2));
    world.report("web", ALLOC_CLIENT_RUNNING);
    world.stop("web");
    world.report("web", ALLOC_CLIENT_COMPLETE);
    assert_eq!(
        world.state().job(NS, "web").unwrap().status,
        JOB_STATUS_DEAD
    );
    world.collect();
    assert!(
        world.state().job(NS, "web").is_some(),
        "too young for the defaults"
    );
    world.later(Duration::from_millis(5));
    world.collect_with(&Thresholds::forced());
    let state = world.state();
    assert!(state.job(NS, "web").is_none());
    assert_eq!(state.allocs().count(), 0);
    assert_eq!(state.evals().count(), 0);
}

#[test]
fn a_decision_on_an_older_snapshot_removes_nothing_that_changed_since() {
    let mut world = World::new();
    world.register(batch("report"));
    world.report("report", ALLOC_CLIENT_COMPLETE);
    world.later(5 * HOUR);
    let stale = decide(&world.state(), world.now, &Thresholds::default());
    assert_eq!(stale.collect.jobs.len(), 1);
    // Registered again before the collection is written: the job and what
    // it now runs stay.
    let mut again = batch("report");
    again.meta = Some([("v".to_string(), "2".to_string())].into());
    world.register(again);
    for command in commands(stale.collect) {
        world.apply(command);
    }
    let state = world.state();
    assert!(state.job(NS, "report").is_some());
    assert_eq!(state.evals_by_job(NS, "report").count(), 2);
    assert_eq!(state.allocs_by_job(NS, "report").count(), 4);

    // An allocation changed since the decision (its modify index moved) is
    // left, as are those of a job that changed.
    let alloc = state.allocs_by_job(NS, "report").next().unwrap().clone();
    let job = state.job(NS, "report").unwrap().clone();
    let collect = GcCollect {
        jobs: vec![JobCollected {
            namespace: NS.into(),
            job_id: "report".into(),
            job_modify_index: Some(job.modify_index),
            evals: Vec::new(),
            allocs: vec![Collected {
                id: alloc.id.clone(),
                modify_index: alloc.modify_index - 1,
            }],
            purge: true,
        }],
        ..GcCollect::default()
    };
    world.apply(Command::GcCollect(Box::new(collect)));
    assert!(world.state().alloc(&alloc.id).is_some());
    assert!(world.state().job(NS, "report").is_some());
}

#[test]
fn down_nodes_without_live_work_and_expired_tokens_go() {
    let mut world = World::new();
    let node = harness::node("n2", "dc1", 8000, 16384);
    let now = world.now;
    world.apply(Command::NodeRegister {
        node: Box::new(node),
        now,
    });
    world.register(harness::job("web", "service", 1));
    world.report("web", ALLOC_CLIENT_RUNNING);
    let busy = world
        .state()
        .allocs_by_job(NS, "web")
        .next()
        .unwrap()
        .node_id
        .clone();
    let idle = if busy == "n1" { "n2" } else { "n1" };
    for node in [busy.as_str(), idle] {
        world.apply(Command::NodeUpdateStatus {
            node_id: node.into(),
            status: NODE_STATUS_DOWN.into(),
            event: None,
            now,
        });
    }
    let token = |id: &str, expires: Option<DateTime<Utc>>| AclToken {
        accessor_id: id.into(),
        secret_id: format!("secret-{id}"),
        expiration_time: expires,
        ..AclToken::default()
    };
    world.apply(Command::AclTokenUpsert {
        tokens: vec![
            token("expired", Some(now - chrono::Duration::hours(2))),
            token("lasting", None),
        ],
    });
    world.later(25 * HOUR);
    let verdict = world.collect();
    assert_eq!(verdict.kept.get(KEPT_NODE_ALLOCS), Some(&1), "{verdict:?}");
    let state = world.state();
    assert!(state.node(idle).is_none());
    assert!(state.node(&busy).is_some());
    assert!(state.acl_token("expired").is_none());
    assert!(state.acl_token("lasting").is_some());
}

#[test]
fn a_job_emptied_by_collection_is_dead_and_summaries_count_again() {
    let mut world = World::new();
    world.register(harness::job("web", "service", 1));
    world.report("web", ALLOC_CLIENT_COMPLETE);
    let job = world.state().job(NS, "web").unwrap().clone();
    assert_eq!(job.status, JOB_STATUS_DEAD);
    assert!(!job.stop);
    world.later(2 * HOUR);
    world.collect();
    let state = world.state();
    assert_eq!(state.allocs_by_job(NS, "web").count(), 0);
    assert_eq!(state.job(NS, "web").unwrap().status, JOB_STATUS_DEAD);
    let counted = |state: &State| state.job_summary(NS, "web").unwrap().summary["group"].complete;
    assert_eq!(
        counted(&state),
        1,
        "collection leaves the counts (as Nomad)"
    );
    world.apply(Command::JobSummariesReconcile);
    assert_eq!(counted(&world.state()), 0);
}

#[test]
fn writes_are_bounded_and_never_split_a_job() {
    let collected = |n: usize| {
        (0..n).map(|i| Collected {
            id: format!("a{i}"),
            modify_index: 1,
        })
    };
    let job = |id: usize, allocs: usize| JobCollected {
        namespace: NS.into(),
        job_id: format!("job-{id}"),
        job_modify_index: Some(1),
        evals: Vec::new(),
        allocs: collected(allocs).collect(),
        purge: true,
    };
    let collect = GcCollect {
        jobs: (0..5).map(|id| job(id, 2_000)).collect(),
        nodes: collected(3).collect(),
        tokens: collected(2).collect(),
    };
    let total = collect.len();
    let written = commands(collect);
    let mut seen = 0;
    for command in &written {
        let Command::GcCollect(entry) = command else {
            panic!("{command:?}");
        };
        assert!(entry.len() <= super::OBJECTS_PER_ENTRY, "{}", entry.len());
        seen += entry.len();
    }
    assert_eq!(seen, total);
    assert_eq!(written.len(), 3);
}
