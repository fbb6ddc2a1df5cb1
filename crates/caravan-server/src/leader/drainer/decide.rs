//! What the drainer does next, decided from one state snapshot (pure: the
//! loop in `mod.rs` writes the decision). The rules (scheduling.md §6.2,
//! with Caravan's departures from Nomad):
//!
//! - Service allocations move group by group: at most
//!   `min(drainable, healthy − (count − max_parallel))` more are marked
//!   `Migrate`, so no more than `max_parallel` of a group are away at once
//!   and the next ones wait for the replacements' health.
//! - Batch allocations are left to finish until the deadline, then stopped
//!   without replacement (`MigrateDisablePlacement`).
//! - System allocations are stopped last (once every other allocation on
//!   the node is terminal on its client), or left alone with
//!   `IgnoreSystemJobs`.
//! - At the deadline (at once for a negative one) everything left is
//!   marked.
//! - A drain completes only once every allocation it waits for is terminal
//!   on its client, system ones included (Nomad only marks those).
//! - A migration whose replacement finds no room leaves the old allocation
//!   running (the scheduler keeps it until a replacement is placed) and
//!   the node gets an event naming the job and group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, DesiredTransition};
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_PENDING, TRIGGER_NODE_DRAIN,
};
use caravan_api_types::job::{
    Job, MigrateStrategy, JOB_TYPE_BATCH, JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM,
};
use caravan_api_types::node::{Node, NodeEvent, SUBSYSTEM_DRAIN};
use caravan_state::{new_eval, State};
use chrono::{DateTime, Utc};

/// One drain to complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub node_id: String,
    pub deadline_reached: bool,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Decision {
    /// Allocations to mark, per job (`(namespace, job ID)`), with the
    /// `node-drain` evaluation that acts on them.
    pub marks: BTreeMap<(String, String), JobMarks>,
    pub completed: Vec<Completion>,
    /// Node events to write (a migration blocked on room).
    pub events: Vec<(String, NodeEvent)>,
    /// `node-drain` evaluations for jobs whose marked allocations are still
    /// running on a node past its deadline (their migration was blocked:
    /// the scheduler must now stop them whether or not it can replace them).
    pub evals: Vec<Evaluation>,
    /// The nearest deadline still ahead: look again then.
    pub wake_at: Option<DateTime<Utc>>,
}

/// One job's allocations to mark, and its evaluation.
#[derive(Debug)]
pub struct JobMarks {
    pub transitions: BTreeMap<String, DesiredTransition>,
    pub eval: Evaluation,
}

impl Decision {
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
            && self.completed.is_empty()
            && self.events.is_empty()
            && self.evals.is_empty()
    }
}

/// The message of the event that says a drain waits for room.
pub fn blocked_message(job_id: &str, group: &str) -> String {
    format!("Drain blocked: no node has room for job {job_id:?} group {group:?}")
}

/// The job type of `alloc` (its own copy of the job, else the stored job).
fn job_of<'a>(state: &'a State, alloc: &'a Allocation) -> Option<&'a Job> {
    alloc
        .job
        .as_deref()
        .or_else(|| state.job(&alloc.namespace, &alloc.job_id).map(|job| &**job))
}

fn is_system(job_type: &str) -> bool {
    matches!(job_type, JOB_TYPE_SYSTEM | JOB_TYPE_SYSBATCH)
}

/// Still on its node as far as a drain is concerned: not terminal on the
/// client (a client reports an allocation stopped before it ran as
/// complete, so that one does not hold the drain for ever).
fn still_on_node(alloc: &Allocation) -> bool {
    !alloc.client_terminal()
}

fn marked(alloc: &Allocation) -> bool {
    alloc.desired_transition.migrate == Some(true)
}

/// Whether `node`'s drain deadline has passed at `now` (a negative
/// deadline: at once).
pub fn deadline_passed(node: &Node, now: DateTime<Utc>) -> bool {
    node.drain_strategy
        .as_ref()
        .is_some_and(|drain| drain.deadline < 0 || drain.force_deadline.is_some_and(|at| at <= now))
}

/// Blocked migrations already told on a node in this term: (node ID,
/// blocked eval ID, group). Kept by the drainer's loop, because a node
/// keeps only its last ten events and a busy node would be told again and
/// again.
pub type Reported = BTreeSet<(String, String, String)>;

/// Decides the next marks, completions and events for every draining node.
pub fn decide(
    state: &State,
    now: DateTime<Utc>,
    reported: &Reported,
    new_id: &mut dyn FnMut() -> String,
) -> Decision {
    let mut decision = Decision::default();
    let draining: Vec<&Arc<Node>> = state.nodes().filter(|node| node.is_draining()).collect();
    if draining.is_empty() {
        return decision;
    }
    let mut now_nanos = now.timestamp_nanos_opt().unwrap_or_default();
    if now_nanos <= 0 {
        now_nanos = 1;
    }
    let mut marker = Marker {
        state,
        now: now_nanos,
        new_id,
        decision: &mut decision,
    };
    // Jobs with service allocations on nodes still within their deadline:
    // their groups are moved below, across every draining node at once.
    let mut service_jobs: BTreeSet<(String, String)> = BTreeSet::new();
    // Jobs with marked allocations still running past a deadline.
    let mut expired_jobs: BTreeSet<(String, String)> = BTreeSet::new();
    for node in &draining {
        let Some(drain) = node.drain_strategy.as_ref() else {
            continue;
        };
        let expired = deadline_passed(node, now);
        if !expired {
            if let Some(at) = drain.force_deadline {
                let wake = marker.decision.wake_at.get_or_insert(at);
                *wake = (*wake).min(at);
            }
        }
        let mut others_left = false;
        let mut system_left: Vec<&Arc<Allocation>> = Vec::new();
        for alloc in state.allocs_by_node(&node.id).filter(|a| still_on_node(a)) {
            let Some(job) = job_of(state, alloc) else {
                // A job purged from under its allocation: the scheduler
                // stops it; the drain waits for that.
                others_left = true;
                continue;
            };
            if is_system(&job.job_type) {
                if !drain.ignore_system_jobs {
                    system_left.push(alloc);
                }
                continue;
            }
            others_left = true;
            if expired {
                if marked(alloc) && !alloc.server_terminal() {
                    expired_jobs.insert((alloc.namespace.clone(), alloc.job_id.clone()));
                }
                marker.mark(alloc, job.job_type == JOB_TYPE_BATCH);
            } else if job.job_type == JOB_TYPE_SERVICE && !alloc.server_terminal() {
                service_jobs.insert((alloc.namespace.clone(), alloc.job_id.clone()));
            }
        }
        // System allocations go last: once nothing else is left, or at
        // the deadline.
        if expired || !others_left {
            for alloc in &system_left {
                marker.mark(alloc, false);
            }
        }
        if !others_left && system_left.is_empty() {
            marker.decision.completed.push(Completion {
                node_id: node.id.clone(),
                deadline_reached: expired,
            });
        }
    }
    let draining_now: BTreeSet<&str> = draining
        .iter()
        .filter(|node| !deadline_passed(node, now))
        .map(|node| node.id.as_str())
        .collect();
    for (namespace, job_id) in &service_jobs {
        marker.move_groups(namespace, job_id, &draining_now);
    }
    for (namespace, job_id) in &expired_jobs {
        marker.wake(namespace, job_id);
    }
    blocked_events(state, &draining, now, reported, &mut decision);
    decision
}

struct Marker<'a, 'b> {
    state: &'a State,
    now: i64,
    new_id: &'b mut dyn FnMut() -> String,
    decision: &'b mut Decision,
}

impl Marker<'_, '_> {
    /// Marks `alloc` to migrate (batch: to stop without a replacement),
    /// unless it is marked or stopped already.
    fn mark(&mut self, alloc: &Allocation, no_replacement: bool) {
        if marked(alloc) || alloc.server_terminal() {
            return;
        }
        let Some(job) = job_of(self.state, alloc) else {
            return;
        };
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        let marks = self.decision.marks.entry(key).or_insert_with(|| {
            let mut eval = new_eval(job, TRIGGER_NODE_DRAIN, (self.new_id)(), self.now);
            eval.job_modify_index = job.job_modify_index;
            JobMarks {
                transitions: BTreeMap::new(),
                eval,
            }
        });
        marks.transitions.insert(
            alloc.id.clone(),
            DesiredTransition {
                migrate: Some(true),
                migrate_disable_placement: no_replacement.then_some(true),
                ..DesiredTransition::default()
            },
        );
    }

    /// A `node-drain` evaluation for a job whose marked allocations still
    /// run past the deadline, unless one is already waiting (or this pass
    /// marks others of the job, which brings its own).
    fn wake(&mut self, namespace: &str, job_id: &str) {
        let key = (namespace.to_string(), job_id.to_string());
        if self.decision.marks.contains_key(&key) {
            return;
        }
        let waiting = self
            .state
            .evals_by_job(namespace, job_id)
            .any(|eval| eval.status == EVAL_STATUS_PENDING);
        let Some(job) = self.state.job(namespace, job_id) else {
            return;
        };
        if waiting {
            return;
        }
        let mut eval = new_eval(job, TRIGGER_NODE_DRAIN, (self.new_id)(), self.now);
        eval.job_modify_index = job.job_modify_index;
        self.decision.evals.push(eval);
    }

    /// Whether this pass marks `alloc` already.
    fn marking(&self, alloc: &Allocation) -> bool {
        self.decision
            .marks
            .get(&(alloc.namespace.clone(), alloc.job_id.clone()))
            .is_some_and(|marks| marks.transitions.contains_key(&alloc.id))
    }

    /// Nomad's rule per service group: mark at most
    /// `healthy − (count − max_parallel)` of the group's allocations on
    /// draining nodes, where healthy counts the live, unmarked allocations
    /// whose health the client has decided.
    fn move_groups(&mut self, namespace: &str, job_id: &str, draining: &BTreeSet<&str>) {
        let Some(job) = self.state.job(namespace, job_id).cloned() else {
            return;
        };
        if job.stop {
            return; // being stopped anyway
        }
        let allocs: Vec<&Arc<Allocation>> = self.state.allocs_by_job(namespace, job_id).collect();
        for group in &job.task_groups {
            let migrate = group
                .migrate
                .clone()
                .unwrap_or_else(MigrateStrategy::default);
            let in_group = || {
                allocs
                    .iter()
                    .filter(|a| a.task_group == group.name && !a.terminal())
            };
            let healthy = in_group()
                .filter(|a| !marked(a) && !self.marking(a))
                .filter(|a| {
                    a.deployment_status
                        .as_ref()
                        .is_some_and(|s| s.healthy.is_some())
                })
                .count() as i64;
            let mut drainable: Vec<&&Arc<Allocation>> = in_group()
                .filter(|a| !marked(a) && !self.marking(a))
                .filter(|a| draining.contains(a.node_id.as_str()))
                .collect();
            drainable.sort_by(|a, b| (&a.node_id, &a.name).cmp(&(&b.node_id, &b.name)));
            let max_parallel = migrate.max_parallel.max(1);
            let allowed = healthy - (group.count - max_parallel);
            let take = usize::try_from(allowed.max(0))
                .unwrap_or(0)
                .min(drainable.len());
            for alloc in drainable.into_iter().take(take) {
                self.mark(alloc, false);
            }
        }
    }
}

/// An event on each draining node whose marked allocations wait for room:
/// they are still running, marked, and their job's blocked evaluation
/// failed to place their group. Written once per blocked evaluation.
fn blocked_events(
    state: &State,
    draining: &[&Arc<Node>],
    now: DateTime<Utc>,
    reported: &Reported,
    decision: &mut Decision,
) {
    for node in draining {
        if deadline_passed(node, now) {
            continue;
        }
        let mut waiting: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
        for alloc in state.allocs_by_node(&node.id) {
            if marked(alloc) && !alloc.server_terminal() && still_on_node(alloc) {
                waiting.insert((&alloc.namespace, &alloc.job_id, &alloc.task_group));
            }
        }
        for (namespace, job_id, group) in waiting {
            let Some(blocked) = state
                .evals_by_job(namespace, job_id)
                .find(|eval| eval.status == EVAL_STATUS_BLOCKED)
            else {
                continue;
            };
            let failed = blocked
                .failed_tg_allocs
                .as_ref()
                .is_some_and(|failed| failed.contains_key(group));
            if !failed {
                continue;
            }
            let message = blocked_message(job_id, group);
            let told = node.events.iter().any(|event| {
                event.message == message
                    && event
                        .details
                        .as_ref()
                        .and_then(|details| details.get("eval_id"))
                        == Some(&blocked.id)
            });
            let key = (node.id.clone(), blocked.id.clone(), group.to_string());
            if told || reported.contains(&key) {
                continue;
            }
            let event = NodeEvent::new(SUBSYSTEM_DRAIN, &message)
                .with_detail("job", job_id)
                .with_detail("group", group)
                .with_detail("eval_id", &blocked.id);
            decision.events.push((node.id.clone(), event));
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
