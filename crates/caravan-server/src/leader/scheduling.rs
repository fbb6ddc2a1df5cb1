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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_CANCELED, EVAL_STATUS_FAILED, EVAL_STATUS_PENDING,
    TRIGGER_MAX_PLANS, TRIGGER_QUEUED_ALLOCS,
};
use caravan_api_types::job::Job;
use caravan_api_types::node::Node;
use caravan_api_types::operator::SchedulerConfiguration;
use caravan_scheduler::{Context, StateView, UuidIds};
use caravan_state::job_commands::PlanResult;
use caravan_state::{Command, State, Table};
use tokio::task::JoinSet;

use crate::leader::clock::{delayed, now_nanos};
use crate::leader::context::LeaderServer;
use crate::leader::deliveries::Deliveries;
use crate::leader::lifecycle::LeaderToken;
use crate::leader::plan_apply::{self, PlanApplier};
use crate::leader::reactions::{unblock_all, unblock_conflicts, NodeReactions};
use crate::leader::stats::count;
pub use crate::leader::stats::SchedulerStats;

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

/// Workers per leader: `num_schedulers`, or Nomad's default of one per
/// core.
pub fn workers(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// The pending evaluations ready to run, best first: higher priority, then
/// older; at most one per job, none of a job already in flight, and only
/// of the job types this server schedules.
fn ready(
    state: &State,
    in_flight: &BTreeSet<String>,
    enabled: &[String],
    now: i64,
) -> Vec<Evaluation> {
    let mut pending: Vec<&Arc<Evaluation>> = state
        .evals_with_status(EVAL_STATUS_PENDING)
        .filter(|eval| !delayed(eval, now))
        .filter(|eval| enabled.is_empty() || enabled.contains(&eval.eval_type))
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
        .evals_with_status(EVAL_STATUS_PENDING)
        .filter_map(|eval| eval.wait_until?.timestamp_nanos_opt())
        .filter(|until| *until > now)
        .min()
        .map(|until| Duration::from_nanos((until - now) as u64))
}

/// How often blocked evaluations left by placement conflicts are retried
/// (Nomad's `periodicUnblockFailedEvals`, every minute there): conflicts
/// come from other plans taking room, so no node change or free may ever
/// wake them. Shorter than Nomad's: on a busy cluster a job that lost five
/// races in a row otherwise waits a minute with room free for it (the
/// contention benchmark's slowest job did).
const CONFLICT_RETRY: Duration = Duration::from_secs(5);

/// Runs the pipeline until `token`'s term ends (a leader duty).
pub async fn run<S: LeaderServer + ?Sized>(server: Arc<S>, token: LeaderToken) {
    let applier = Arc::new(PlanApplier::default());
    let workers = workers(server.scheduler_workers());
    let enabled = server.enabled_schedulers().to_vec();
    let mut evals = server.store().watch(Table::Evals);
    let mut nodes_changed = server.store().watch(Table::Nodes);
    let mut allocs_changed = server.store().watch(Table::Allocs);
    let mut conflict_retry = tokio::time::interval(CONFLICT_RETRY);
    conflict_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    conflict_retry.reset();
    let start = server.store().snapshot();
    let mut reactions = NodeReactions::new(&start);
    let mut freed_seen = start.allocs_freed_index();
    // What freed room before this term is not known here (a restored
    // state does not carry it): every blocked evaluation gets one retry.
    // And down nodes whose evaluations the last leader may not have
    // written get them now.
    let unblock = unblock_all(&start, now_nanos());
    let react = reactions.react(&start, &BTreeSet::new(), server.scheduler_stats());
    drop(start);
    write(server.as_ref(), unblock, "failed to unblock evaluations").await;
    if write(server.as_ref(), react, "failed to write node evaluations").await {
        reactions.committed();
    }
    let mut running: JoinSet<bool> = JoinSet::new();
    // The job and evaluation of each running worker, by task: a worker
    // that panics frees its own job only.
    let mut in_flight: HashMap<tokio::task::Id, (String, Evaluation)> = HashMap::new();
    let mut deliveries = Deliveries::default();
    loop {
        if token.is_cancelled() {
            running.abort_all();
            return;
        }
        let jobs = in_flight_jobs(&in_flight);
        let state = server.store().snapshot();
        let now = now_nanos();
        for eval in ready(&state, &jobs, &enabled, now) {
            if running.len() >= workers {
                break;
            }
            if deliveries.held(&eval.id, now) {
                continue;
            }
            let key = caravan_state::ns_key(&eval.namespace, &eval.job_id);
            let server = Arc::clone(&server);
            let applier = Arc::clone(&applier);
            let planning = eval.clone();
            let task = running.spawn(async move {
                match process(server.as_ref(), &applier, planning).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "scheduling an evaluation failed");
                        false
                    }
                }
            });
            in_flight.insert(task.id(), (key, eval));
        }
        let wake = [next_wake(&state, now), deliveries.next_release(now)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(3600));
        drop(state);
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                running.abort_all();
                return;
            }
            Some(done) = running.join_next_with_id() => {
                let (id, processed) = match done {
                    Ok((id, processed)) => (id, processed),
                    Err(error) => (error.id(), false),
                };
                if let Some((_, eval)) = in_flight.remove(&id) {
                    if processed {
                        deliveries.succeeded(&eval.id);
                    } else {
                        // Nomad's nack: handed out again after a delay,
                        // failed at the delivery limit.
                        let state = server.store().snapshot();
                        let command = deliveries.failed(&eval, &state, now_nanos());
                        drop(state);
                        write(server.as_ref(), command, "failed to fail an evaluation").await;
                    }
                }
            }
            changed = evals.changed() => if changed.is_err() { return },
            changed = nodes_changed.changed() => {
                if changed.is_err() { return }
                let jobs = in_flight_jobs(&in_flight);
                let state = server.store().snapshot();
                let command = reactions.react(&state, &jobs, server.scheduler_stats());
                drop(state);
                if write(server.as_ref(), command, "failed to write node evaluations").await {
                    reactions.committed();
                }
            }
            changed = allocs_changed.changed() => {
                if changed.is_err() { return }
                // Room freed on a node (an allocation stopped, completed,
                // failed or was removed): blocked evaluations may fit now
                // (Nomad unblocks on a client's complete or failed report).
                // Under the applier's lock, so a worker writing a blocked
                // evaluation either sees this free or is seen by it.
                if server.store().snapshot().allocs_freed_index() > freed_seen {
                    let _guard = applier.serialize().await;
                    let state = server.store().snapshot();
                    freed_seen = state.allocs_freed_index();
                    let command = unblock_all(&state, now_nanos());
                    drop(state);
                    write(server.as_ref(), command, "failed to unblock evaluations").await;
                }
            }
            _ = conflict_retry.tick() => {
                let state = server.store().snapshot();
                let command = unblock_conflicts(&state, now_nanos());
                drop(state);
                write(server.as_ref(), command, "failed to retry blocked evaluations").await;
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

/// The jobs being planned now.
fn in_flight_jobs(in_flight: &HashMap<tokio::task::Id, (String, Evaluation)>) -> BTreeSet<String> {
    in_flight.values().map(|(key, _)| key.clone()).collect()
}

/// Commits a reaction's write, if it has one: true when there was none
/// or it committed. A failure is logged; the node reactions then react to
/// the same change again, the unblocks happen at the next free, retry
/// tick or term.
async fn write<S: LeaderServer + ?Sized>(server: &S, command: Option<Command>, what: &str) -> bool {
    let Some(command) = command else {
        return true;
    };
    match server.apply(command).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "{what}");
            false
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
        let mut planning = eval.clone();
        if was_blocked(&eval) {
            // An unblocked evaluation is planned as the blocked one it
            // was: if it still cannot place, the scheduler blocks it again
            // in place (Nomad's reblock) rather than completing it and
            // creating another, so retries do not multiply evaluations.
            planning.status = EVAL_STATUS_BLOCKED.into();
        }
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
        let checked = plan_apply::check_owned(&latest, result.plan, now);
        let freed = latest.allocs_freed_index();
        drop(latest);
        let mut evals = Vec::new();
        let complete = checked.refused_nodes.is_empty();
        let stats = server.scheduler_stats();
        if complete {
            evals.push(result.eval.clone());
            evals.extend(result.blocked_evals.iter().cloned());
            evals.extend(result.followup_evals.iter().cloned());
            let canceled = superseded(&state, &eval, now);
            count(&stats.evals_canceled, canceled.len());
            evals.extend(canceled);
        } else {
            count(&stats.plans_refused, 1);
            if attempt == MAX_ATTEMPTS {
                // Nomad's ending: the eval fails and a blocked one retries
                // when the nodes change, so the job is not left unplaced.
                let blocked = Evaluation {
                    id: uuid::Uuid::new_v4().to_string(),
                    triggered_by: TRIGGER_MAX_PLANS.into(),
                    status: EVAL_STATUS_BLOCKED.into(),
                    status_description: MAX_PLANS_DESCRIPTION.into(),
                    previous_eval: eval.id.clone(),
                    snapshot_index: state.latest_index(),
                    create_time: now,
                    modify_time: now,
                    ..new_eval_like(&eval)
                };
                evals.push(Evaluation {
                    status: EVAL_STATUS_FAILED.into(),
                    status_description: format!("maximum attempts reached ({MAX_ATTEMPTS})"),
                    blocked_eval: blocked.id.clone(),
                    ..eval.clone()
                });
                evals.push(blocked);
            }
        }
        if !complete {
            // What commits of a partly refused plan may point at follow-up
            // evaluations (a delayed reschedule); they must exist, or the
            // allocation waits on an evaluation that never runs.
            evals.extend(referenced_followups(
                &checked.result,
                &result.followup_evals,
            ));
        }
        // Room freed after the planning snapshot was reacted to before
        // these blocked evaluations existed: they go straight back to
        // pending (the missed unblock, as the state does for nodes).
        for blocked in evals
            .iter_mut()
            .filter(|e| e.status == EVAL_STATUS_BLOCKED && e.snapshot_index < freed)
        {
            blocked.status = EVAL_STATUS_PENDING.into();
        }
        let nothing = checked.result.allocs.is_empty() && checked.result.stops.is_empty();
        if nothing && evals.is_empty() {
            continue;
        }
        let finished = !evals.is_empty();
        let write = server
            .apply(plan_apply::command(checked.result, evals))
            .await?;
        count(&stats.plans_applied, 1);
        if finished {
            count(&stats.evals_processed, 1);
        }
        if complete || attempt == MAX_ATTEMPTS {
            return Ok(());
        }
        tracing::debug!(eval = %eval.id, attempt, "plan partly refused; planning again");
        wanted = write.index;
    }
    Ok(())
}

/// Whether `eval` is a blocked evaluation sent back to pending (only
/// blocked evaluations carry these triggers).
fn was_blocked(eval: &Evaluation) -> bool {
    eval.triggered_by == TRIGGER_QUEUED_ALLOCS || eval.triggered_by == TRIGGER_MAX_PLANS
}

/// The follow-up evaluations that `committed` points at.
fn referenced_followups(committed: &PlanResult, followups: &[Evaluation]) -> Vec<Evaluation> {
    let referenced: BTreeSet<&str> = committed
        .allocs
        .iter()
        .map(|alloc| alloc.followup_eval_id.as_str())
        .chain(
            committed
                .stops
                .iter()
                .filter_map(|stop| stop.followup_eval_id.as_deref()),
        )
        .collect();
    followups
        .iter()
        .filter(|eval| referenced.contains(eval.id.as_str()))
        .cloned()
        .collect()
}

/// Nomad's text for the blocked evaluation left after placement conflicts.
pub const MAX_PLANS_DESCRIPTION: &str = "created due to placement conflicts";

/// The identity of `eval`'s job, for an evaluation that follows it.
fn new_eval_like(eval: &Evaluation) -> Evaluation {
    Evaluation {
        namespace: eval.namespace.clone(),
        priority: eval.priority,
        eval_type: eval.eval_type.clone(),
        job_id: eval.job_id.clone(),
        job_modify_index: eval.job_modify_index,
        ..Evaluation::default()
    }
}

/// The job's other pending evaluations that planning `eval` on `state`
/// made redundant: they were in that state, so the plan already answers
/// them. Written `canceled` in the plan's own write, not one write each
/// (Nomad's cancel reaper). Delayed ones keep their time.
fn superseded(state: &State, eval: &Evaluation, now: i64) -> Vec<Evaluation> {
    state
        .evals_by_job(&eval.namespace, &eval.job_id)
        .filter(|other| other.status == EVAL_STATUS_PENDING && other.id != eval.id)
        .filter(|other| !delayed(other, now))
        .map(|other| Evaluation {
            status: EVAL_STATUS_CANCELED.into(),
            status_description: CANCELED_DESCRIPTION.into(),
            modify_time: now.max(other.modify_time + 1),
            ..(**other).clone()
        })
        .collect()
}

/// Nomad's text for a pending evaluation made redundant by a newer plan.
pub const CANCELED_DESCRIPTION: &str = "canceled after more recent eval was processed";

#[cfg(test)]
#[path = "scheduling_tests.rs"]
mod tests;
