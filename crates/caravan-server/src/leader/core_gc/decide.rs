//! What garbage collection removes, decided from one snapshot (pure: a
//! state and a time in, a [`Verdict`] out). Nomad's rules
//! (`nomad/core_sched.go`, scheduling.md §11), with wall-clock ages:
//!
//! - **Jobs** that are finished (dead and stopped, or a dead batch or
//!   sysbatch job; a periodic or parameterized parent only once stopped),
//!   submitted before `job_gc_threshold`, with no tagged version, go with
//!   all their evaluations and allocations, and only if every one of
//!   those can go.
//! - **Evaluations** that are terminal and older than `eval_gc_threshold`
//!   (`batch_eval_gc_threshold` for batch ones) go when every allocation
//!   they made can; the allocations that can go do in any case. A batch
//!   job's evaluations stay while the job lives (or the scheduler would run
//!   its work again); only its allocations of older versions go.
//! - **Allocations** can go when terminal, old enough and not running on
//!   their client, and either their job is gone, stopped or dead, or they
//!   were stopped, or they did not fail, or their rescheduling is over
//!   (replaced, no policy, or the last attempt is older than the policy's
//!   interval; never under an unlimited policy).
//! - **Nodes** that are down, last changed status before
//!   `node_gc_threshold`, with no live allocation.
//! - **ACL tokens** that have expired and were created before
//!   `acl_token_gc_threshold`.
//!
//! What stays for a reason a user may wonder about is counted in
//! [`Verdict::kept`] (Nomad's layered thresholds confuse its users: the
//! log says what was kept and why).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use caravan_api_types::alloc::{
    Allocation, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_RUNNING, ALLOC_DESIRED_STOP,
};
use caravan_api_types::eval::Evaluation;
use caravan_api_types::job::{Job, JOB_STATUS_DEAD, JOB_TYPE_BATCH, JOB_TYPE_SYSBATCH};
use caravan_api_types::node::NODE_STATUS_DOWN;
use caravan_state::job_commands::{Collected, GcCollect, JobCollected};
use caravan_state::State;
use chrono::{DateTime, Utc};

pub use crate::options::Thresholds;

/// What one pass removes, and how much it kept for each reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub collect: GcCollect,
    pub kept: BTreeMap<&'static str, usize>,
}

impl Verdict {
    fn keep(&mut self, reason: &'static str) {
        *self.kept.entry(reason).or_default() += 1;
    }
}

pub const KEPT_JOB_YOUNG: &str = "finished job submitted within job_gc_threshold";
pub const KEPT_JOB_TAGGED: &str = "finished job with a tagged version";
pub const KEPT_JOB_PARTS: &str = "finished job with evaluations or allocations not yet collectable";
pub const KEPT_EVAL_YOUNG: &str = "evaluation finished within eval_gc_threshold";
pub const KEPT_BATCH_EVAL_YOUNG: &str = "batch evaluation finished within batch_eval_gc_threshold";
pub const KEPT_BATCH_EVAL_LIVE: &str = "evaluation of a batch job that is not finished";
pub const KEPT_EVAL_ALLOCS: &str = "evaluation with allocations not yet collectable";
pub const KEPT_NODE_YOUNG: &str = "down node within node_gc_threshold";
pub const KEPT_NODE_ALLOCS: &str = "down node with live allocations";

/// Decides what to collect from `state` at `now`.
pub fn decide(state: &State, now: DateTime<Utc>, thresholds: &Thresholds) -> Verdict {
    let now_nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let before = |threshold: Duration| {
        now_nanos.saturating_sub(i64::try_from(threshold.as_nanos()).unwrap_or(i64::MAX))
    };
    let mut verdict = Verdict::default();
    let collected_jobs = collect_jobs(state, now_nanos, before(thresholds.job), &mut verdict);
    let cutoffs = EvalCutoffs {
        eval: before(thresholds.eval),
        batch: before(thresholds.batch_eval),
    };
    collect_evals(state, now_nanos, cutoffs, &collected_jobs, &mut verdict);
    collect_nodes(state, before(thresholds.node), &mut verdict);
    // Nomad's rule: expired, and created before the threshold.
    let token_cutoff = now - chrono::Duration::from_std(thresholds.acl_token).unwrap_or_default();
    for token in state.acl_tokens() {
        let expired = token.expiration_time.is_some_and(|at| at < now);
        let old_enough = token.create_time.is_none_or(|at| at < token_cutoff);
        if expired && old_enough {
            verdict.collect.tokens.push(Collected {
                id: token.accessor_id.clone(),
                modify_index: token.modify_index,
            });
        }
    }
    verdict
}

/// Nomad's "GC-able" job: finished for good.
fn job_finished(job: &Job) -> bool {
    if job.is_template() {
        return job.stop;
    }
    job.status == JOB_STATUS_DEAD
        && (job.stop || job.job_type == JOB_TYPE_BATCH || job.job_type == JOB_TYPE_SYSBATCH)
}

fn collected(id: &str, modify_index: u64) -> Collected {
    Collected {
        id: id.to_string(),
        modify_index,
    }
}

/// Whole finished jobs; returns their keys.
fn collect_jobs(
    state: &State,
    now: i64,
    cutoff: i64,
    verdict: &mut Verdict,
) -> HashSet<(String, String)> {
    let mut done = HashSet::new();
    for job in state.jobs() {
        if !job_finished(job) {
            continue;
        }
        if job.submit_time > cutoff {
            verdict.keep(KEPT_JOB_YOUNG);
            continue;
        }
        let versions = state.job_versions(&job.namespace, &job.id);
        if versions.iter().any(|version| version.version_tag.is_some()) {
            verdict.keep(KEPT_JOB_TAGGED);
            continue;
        }
        let mut evals = Vec::new();
        let mut allocs = Vec::new();
        let mut whole = true;
        for eval in state.evals_by_job(&job.namespace, &job.id) {
            let (eval_goes, eval_allocs) = eval_verdict(state, eval, Some(job), now, cutoff, true);
            if !eval_goes {
                whole = false;
                break;
            }
            evals.push(collected(&eval.id, eval.modify_index));
            allocs.extend(eval_allocs);
        }
        // Allocations whose evaluation is already gone must be able to go
        // too: a purged job leaves nothing behind.
        let named: HashSet<String> = allocs.iter().map(|alloc| alloc.id.clone()).collect();
        for alloc in state.allocs_by_job(&job.namespace, &job.id) {
            if whole && !named.contains(&alloc.id) {
                if alloc_collectable(alloc, Some(job), now, cutoff) {
                    allocs.push(collected(&alloc.id, alloc.modify_index));
                } else {
                    whole = false;
                }
            }
        }
        if !whole {
            verdict.keep(KEPT_JOB_PARTS);
            continue;
        }
        done.insert((job.namespace.clone(), job.id.clone()));
        verdict.collect.jobs.push(JobCollected {
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            job_modify_index: Some(job.modify_index),
            evals,
            allocs,
            purge: true,
        });
    }
    done
}

#[derive(Clone, Copy)]
struct EvalCutoffs {
    eval: i64,
    batch: i64,
}

/// Evaluations (and their allocations) of jobs not collected whole.
fn collect_evals(
    state: &State,
    now: i64,
    cutoffs: EvalCutoffs,
    collected_jobs: &HashSet<(String, String)>,
    verdict: &mut Verdict,
) {
    let mut by_job: BTreeMap<(String, String), JobCollected> = BTreeMap::new();
    for eval in state.evals() {
        if !eval.terminal() {
            continue;
        }
        let key = (eval.namespace.clone(), eval.job_id.clone());
        if collected_jobs.contains(&key) {
            continue;
        }
        let batch = eval.eval_type == JOB_TYPE_BATCH;
        let cutoff = if batch { cutoffs.batch } else { cutoffs.eval };
        if eval.modify_time > cutoff {
            verdict.keep(if batch {
                KEPT_BATCH_EVAL_YOUNG
            } else {
                KEPT_EVAL_YOUNG
            });
            continue;
        }
        let job = state.job(&eval.namespace, &eval.job_id);
        let (eval_goes, allocs) =
            eval_verdict(state, eval, job.map(|job| &**job), now, cutoff, false);
        if !eval_goes {
            verdict.keep(
                if batch && job.is_some_and(|job| !batch_job_over(job, false)) {
                    KEPT_BATCH_EVAL_LIVE
                } else {
                    KEPT_EVAL_ALLOCS
                },
            );
        }
        if !eval_goes && allocs.is_empty() {
            continue;
        }
        let entry = by_job.entry(key).or_insert_with(|| JobCollected {
            namespace: eval.namespace.clone(),
            job_id: eval.job_id.clone(),
            job_modify_index: job.map(|job| job.modify_index),
            evals: Vec::new(),
            allocs: Vec::new(),
            purge: false,
        });
        if eval_goes {
            entry.evals.push(collected(&eval.id, eval.modify_index));
        }
        entry.allocs.extend(allocs);
    }
    verdict.collect.jobs.extend(by_job.into_values());
}

/// Whether a batch job's evaluations may go: the job is gone, or dead and
/// stopped, or dead when its whole job is being collected.
fn batch_job_over(job: &Job, whole_job: bool) -> bool {
    job.status == JOB_STATUS_DEAD && (job.stop || whole_job)
}

/// Nomad's `gcEval`: whether `eval` can go, and which of its allocations
/// can (these go even when the evaluation stays).
fn eval_verdict(
    state: &State,
    eval: &Evaluation,
    job: Option<&Job>,
    now: i64,
    cutoff: i64,
    whole_job: bool,
) -> (bool, Vec<Collected>) {
    if !eval.terminal() || eval.modify_time > cutoff {
        return (false, Vec::new());
    }
    if eval.eval_type == JOB_TYPE_BATCH {
        if let Some(job) = job.filter(|job| !batch_job_over(job, whole_job)) {
            // Only allocations of versions older than the job's current
            // one, finished and old enough; the evaluation goes too when
            // those are all it made (or it made none), as Nomad's does.
            let made = state.allocs_by_eval(&eval.id).count();
            let older: Vec<Collected> = state
                .allocs_by_eval(&eval.id)
                .filter(|alloc| {
                    alloc.create_index < job.job_modify_index
                        && alloc.modify_time <= cutoff
                        && alloc.terminal()
                })
                .map(|alloc| collected(&alloc.id, alloc.modify_index))
                .collect();
            return (older.len() == made, older);
        }
    }
    let mut goes = true;
    let mut allocs = Vec::new();
    for alloc in state.allocs_by_eval(&eval.id) {
        if alloc_collectable(alloc, job, now, cutoff) {
            allocs.push(collected(&alloc.id, alloc.modify_index));
        } else {
            goes = false;
        }
    }
    (goes, allocs)
}

/// Nomad's `allocGCEligible`.
fn alloc_collectable(alloc: &Allocation, job: Option<&Job>, now: i64, cutoff: i64) -> bool {
    if !alloc.terminal()
        || alloc.modify_time > cutoff
        || alloc.client_status == ALLOC_CLIENT_RUNNING
    {
        return false;
    }
    let Some(job) = job.filter(|job| !job.stop && job.status != JOB_STATUS_DEAD) else {
        return true;
    };
    if alloc.desired_status == ALLOC_DESIRED_STOP || alloc.client_status != ALLOC_CLIENT_FAILED {
        return true;
    }
    let policy = job
        .task_groups
        .iter()
        .find(|group| group.name == alloc.task_group)
        .and_then(|group| group.reschedule_policy.as_ref());
    let Some(policy) = policy.filter(|policy| policy.unlimited || policy.attempts != 0) else {
        return true;
    };
    if !alloc.next_allocation.is_empty() {
        return true;
    }
    if policy.unlimited {
        return false;
    }
    let last = alloc
        .reschedule_tracker
        .as_ref()
        .and_then(|tracker| tracker.events.as_ref())
        .and_then(|events| events.last());
    last.is_some_and(|event| now.saturating_sub(event.reschedule_time) > policy.interval)
}

/// Down nodes with nothing live on them.
fn collect_nodes(state: &State, cutoff: i64, verdict: &mut Verdict) {
    // StatusUpdatedAt is in seconds.
    let cutoff_seconds = cutoff.div_euclid(1_000_000_000);
    for node in state.nodes() {
        if node.status != NODE_STATUS_DOWN {
            continue;
        }
        if node.status_updated_at > cutoff_seconds {
            verdict.keep(KEPT_NODE_YOUNG);
            continue;
        }
        if state
            .allocs_by_node(&node.id)
            .any(|alloc| !alloc.terminal())
        {
            verdict.keep(KEPT_NODE_ALLOCS);
            continue;
        }
        verdict
            .collect
            .nodes
            .push(collected(&node.id, node.modify_index));
    }
}
