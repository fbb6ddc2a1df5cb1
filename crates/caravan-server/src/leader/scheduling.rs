//! The leader's evaluation pipeline: a broker, workers and the plan
//! applier, started with each term of leadership and stopped with it.
//!
//! The broker is the evaluations table itself: pending evaluations are
//! taken oldest-first within priority, at most one per job at a time (a
//! job's later evaluations wait for the one in flight, so two workers never
//! plan the same job at once). A worker plans on a state snapshot at least
//! as new as the evaluation, hands the plan to the [`PlanApplier`], and
//! plans again, up to [`MAX_ATTEMPTS`] times, when a node it chose no
//! longer fits. The evaluation's outcome (complete, with `FailedTGAllocs`,
//! `QueuedAllocations` and a blocked evaluation when something could not
//! be placed) is written in the same Raft entry as the plan.
//!
//! Reactions to nodes live here too: a node that goes down gets a
//! `node-update` evaluation for every job with live allocations on it (the
//! scheduler marks them lost and replaces them), a node that becomes ready
//! and eligible gets one for every system job, and any change to the nodes
//! sends blocked evaluations back to pending (a new node may fit them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_FAILED, EVAL_STATUS_PENDING, TRIGGER_NODE_UPDATE,
};
use caravan_api_types::job::{Job, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM};
use caravan_api_types::node::{Node, ELIGIBLE, NODE_STATUS_DOWN, NODE_STATUS_READY};
use caravan_api_types::operator::SchedulerConfiguration;
use caravan_scheduler::{Context, StateView, UuidIds};
use caravan_state::{new_eval, Command, State, Table};
use tokio::task::JoinSet;

use crate::leader::context::LeaderServer;
use crate::leader::lifecycle::LeaderToken;
use crate::leader::plan_apply::{self, PlanApplier};

/// How many times a worker plans one evaluation before giving up on it
/// (Nomad's `maxServiceScheduleAttempts`).
pub const MAX_ATTEMPTS: usize = 5;

/// How long a worker waits for its snapshot to catch up with an evaluation.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

/// The scheduler's view of one state snapshot.
pub struct SnapshotView(pub Arc<State>);

impl StateView for SnapshotView {
    fn index(&self) -> u64 {
        self.0.latest_index()
    }

    fn nodes(&self) -> Vec<Arc<Node>> {
        self.0.nodes().cloned().collect()
    }

    fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.0.node(id).cloned()
    }

    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        self.0.allocs_by_node(node_id).cloned().collect()
    }

    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        self.0.allocs_by_job(namespace, job_id).cloned().collect()
    }

    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.0.job(namespace, id).cloned()
    }

    fn scheduler_config(&self) -> SchedulerConfiguration {
        self.0
            .scheduler_config()
            .cloned()
            .unwrap_or_else(SchedulerConfiguration::initial)
    }
}

/// Workers per leader: Nomad's `num_schedulers` defaults to the cores.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The pending evaluations ready to run, best first: higher priority, then
/// older; at most one per job, and none of a job already in flight.
fn ready(state: &State, in_flight: &BTreeSet<String>, now: i64) -> Vec<Evaluation> {
    let mut pending: Vec<&Arc<Evaluation>> = state
        .evals()
        .filter(|eval| eval.status == EVAL_STATUS_PENDING)
        .filter(|eval| {
            eval.wait_until
                .and_then(|until| until.timestamp_nanos_opt())
                .is_none_or(|until| until <= now)
        })
        .collect();
    pending.sort_by_key(|eval| (-eval.priority, eval.create_index, eval.id.clone()));
    let mut jobs = in_flight.clone();
    pending
        .into_iter()
        .filter(|eval| jobs.insert(caravan_state::ns_key(&eval.namespace, &eval.job_id)))
        .map(|eval| (**eval).clone())
        .collect()
}

/// When the next delayed evaluation falls due, if any.
fn next_wake(state: &State, now: i64) -> Option<Duration> {
    state
        .evals()
        .filter(|eval| eval.status == EVAL_STATUS_PENDING)
        .filter_map(|eval| eval.wait_until?.timestamp_nanos_opt())
        .filter(|until| *until > now)
        .min()
        .map(|until| Duration::from_nanos((until - now) as u64))
}

/// Runs the pipeline until `token`'s term ends (a leader duty).
pub async fn run<S: LeaderServer + ?Sized>(server: Arc<S>, token: LeaderToken) {
    let applier = Arc::new(PlanApplier::default());
    let workers = default_workers();
    let mut evals = server.store().watch(Table::Evals);
    let mut nodes_changed = server.store().watch(Table::Nodes);
    let mut reactions = NodeReactions::new(&server.store().snapshot());
    let mut running: JoinSet<String> = JoinSet::new();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    loop {
        if token.is_cancelled() {
            running.abort_all();
            return;
        }
        let state = server.store().snapshot();
        let now = now_nanos();
        for eval in ready(&state, &in_flight, now) {
            if running.len() >= workers {
                break;
            }
            let key = caravan_state::ns_key(&eval.namespace, &eval.job_id);
            in_flight.insert(key.clone());
            let server = Arc::clone(&server);
            let applier = Arc::clone(&applier);
            running.spawn(async move {
                if let Err(error) = process(server.as_ref(), &applier, eval).await {
                    tracing::warn!(%error, "scheduling an evaluation failed");
                }
                key
            });
        }
        let wake = next_wake(&state, now).unwrap_or(Duration::from_secs(3600));
        drop(state);
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                running.abort_all();
                return;
            }
            Some(done) = running.join_next() => {
                if let Ok(key) = done {
                    in_flight.remove(&key);
                } else {
                    // A panicked or aborted worker: forget every key so the
                    // job's evaluation is retried.
                    in_flight.clear();
                }
            }
            changed = evals.changed() => if changed.is_err() { return },
            changed = nodes_changed.changed() => {
                if changed.is_err() { return }
                let state = server.store().snapshot();
                let command = reactions.react(&state);
                drop(state);
                if let Some(command) = command {
                    if let Err(error) = server.apply(command).await {
                        tracing::warn!(%error, "failed to write node evaluations");
                    }
                }
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

/// Why one evaluation could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("state did not catch up: {0}")]
    Snapshot(#[from] caravan_state::StateError),
    #[error("raft: {0}")]
    Write(#[from] crate::error::ServerError),
    #[error("scheduler: {0}")]
    Schedule(#[from] caravan_scheduler::ScheduleError),
    #[error("the scheduler panicked")]
    Panicked,
}

/// Plans one evaluation and commits the result.
async fn process<S: LeaderServer + ?Sized>(
    server: &S,
    applier: &PlanApplier,
    eval: Evaluation,
) -> Result<(), ProcessError> {
    let mut wanted = eval.modify_index;
    for attempt in 1..=MAX_ATTEMPTS {
        let state = server
            .store()
            .snapshot_at_least(wanted, SNAPSHOT_WAIT)
            .await?;
        // The evaluation may have been handled meanwhile (a retry after a
        // failover, a second wake-up).
        if state
            .eval(&eval.id)
            .is_none_or(|stored| stored.status != EVAL_STATUS_PENDING)
        {
            return Ok(());
        }
        let now = now_nanos();
        let planning = eval.clone();
        let view_state = Arc::clone(&state);
        let result = tokio::task::spawn_blocking(move || {
            let view = SnapshotView(view_state);
            let mut ids = UuidIds;
            let mut ctx = Context {
                eval: &planning,
                now,
                ids: &mut ids,
            };
            caravan_scheduler::schedule(&view, &mut ctx)
        })
        .await
        .map_err(|_| ProcessError::Panicked)??;
        let _guard = applier.serialize().await;
        let latest = server.store().snapshot();
        let checked = plan_apply::check(&latest, &result.plan, now);
        drop(latest);
        let mut evals = Vec::new();
        let complete = checked.refused_nodes.is_empty();
        if complete {
            evals.push(result.eval.clone());
            evals.extend(result.blocked_evals.iter().cloned());
            evals.extend(result.followup_evals.iter().cloned());
        } else if attempt == MAX_ATTEMPTS {
            evals.push(Evaluation {
                status: EVAL_STATUS_FAILED.into(),
                status_description: format!("maximum attempts reached ({MAX_ATTEMPTS})"),
                ..eval.clone()
            });
        }
        let nothing = checked.result.allocs.is_empty() && checked.result.stops.is_empty();
        if nothing && evals.is_empty() {
            continue;
        }
        let write = server
            .apply(plan_apply::command(checked.result, evals))
            .await?;
        if complete || attempt == MAX_ATTEMPTS {
            return Ok(());
        }
        tracing::debug!(eval = %eval.id, attempt, "plan partly refused; planning again");
        wanted = write.index;
    }
    Ok(())
}

/// What the pipeline remembers of each node between changes, to tell
/// which ones just went down or just became usable.
struct NodeReactions {
    seen: HashMap<String, (String, String)>,
}

impl NodeReactions {
    fn new(state: &State) -> Self {
        Self {
            seen: state
                .nodes()
                .map(|node| (node.id.clone(), usable_key(node)))
                .collect(),
        }
    }

    /// The evaluations a change to the nodes calls for, as one write.
    fn react(&mut self, state: &State) -> Option<Command> {
        let now = now_nanos();
        let mut evals: BTreeMap<String, Evaluation> = BTreeMap::new();
        let mut unblock = false;
        let mut current = HashMap::new();
        for node in state.nodes() {
            let key = usable_key(node);
            let before = self.seen.get(&node.id);
            if before != Some(&key) {
                unblock = true;
                let went_down = key.0 == NODE_STATUS_DOWN;
                let now_usable = key.0 == NODE_STATUS_READY && key.1 == ELIGIBLE;
                if went_down {
                    for alloc in state
                        .allocs_by_node(&node.id)
                        .filter(|alloc| !alloc.terminal())
                    {
                        if let Some(job) = state.job(&alloc.namespace, &alloc.job_id) {
                            node_eval(&mut evals, job, &node.id, node.modify_index, now);
                        }
                    }
                }
                if now_usable {
                    for job in state
                        .jobs_by_type(JOB_TYPE_SYSTEM)
                        .chain(state.jobs_by_type(JOB_TYPE_SYSBATCH))
                        .filter(|job| !job.stop)
                    {
                        node_eval(&mut evals, job, &node.id, node.modify_index, now);
                    }
                }
            }
            current.insert(node.id.clone(), key);
        }
        // A removed node is a change as well (its system allocations go).
        if self.seen.keys().any(|id| !current.contains_key(id)) {
            unblock = true;
        }
        self.seen = current;
        if unblock {
            for eval in state
                .evals()
                .filter(|eval| eval.status == EVAL_STATUS_BLOCKED)
            {
                evals.entry(eval.id.clone()).or_insert_with(|| Evaluation {
                    status: EVAL_STATUS_PENDING.into(),
                    modify_time: now,
                    ..(**eval).clone()
                });
            }
        }
        (!evals.is_empty()).then(|| Command::EvalsUpsert {
            evals: evals.into_values().collect(),
        })
    }
}

/// A node's status and eligibility: what decides whether its allocations
/// stay and whether it takes new ones.
fn usable_key(node: &Node) -> (String, String) {
    (node.status.clone(), node.scheduling_eligibility.clone())
}

fn node_eval(
    evals: &mut BTreeMap<String, Evaluation>,
    job: &Job,
    node_id: &str,
    node_modify_index: u64,
    now: i64,
) {
    let exists = evals
        .values()
        .any(|eval| eval.job_id == job.id && eval.namespace == job.namespace);
    if exists {
        return;
    }
    let mut eval = new_eval(
        job,
        TRIGGER_NODE_UPDATE,
        uuid::Uuid::new_v4().to_string(),
        now,
    );
    eval.node_id = node_id.into();
    eval.node_modify_index = node_modify_index;
    evals.insert(eval.id.clone(), eval);
}
