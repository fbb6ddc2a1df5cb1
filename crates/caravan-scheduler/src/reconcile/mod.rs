//! The reconciler for service and batch jobs (Nomad's
//! `scheduler/reconciler/reconcile_cluster.go`): compares a job's groups
//! with its allocations and says what to stop, place and update.
//!
//! Not modelled yet: deployments and canaries, `max_parallel` rolling
//! updates (every destructive update happens in one evaluation), disconnect
//! blocks (a disconnected node's allocations are lost), sticky disks.

pub mod names;
pub mod reschedule;

use std::collections::HashMap;
use std::sync::Arc;

use caravan_api_types::alloc::{
    Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_LOST, ALLOC_DESIRED_EVICT,
};
use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_PENDING, TRIGGER_ALLOC_RESCHEDULE, TRIGGER_RETRY_FAILED_ALLOC,
};
use caravan_api_types::job::{Job, TaskGroup, JOB_TYPE_BATCH};

use crate::ids::IdGenerator;
use names::NameIndex;

pub const DESC_NOT_NEEDED: &str = "alloc not needed due to job update";
pub const DESC_LOST: &str = "alloc is lost since its node is down";
pub const DESC_MIGRATING: &str = "alloc is being migrated";
pub const DESC_UPDATING: &str = "alloc is being updated due to job update";
pub const DESC_RESCHEDULED: &str = "alloc was rescheduled because it failed";
pub const DESC_NODE_TAINTED: &str = "alloc not needed as node is tainted";
pub const FOLLOWUP_DESCRIPTION: &str = "created for delayed rescheduling";

/// A reschedule due within this long is done now.
const NOW_WINDOW: i64 = 1_000_000_000;
/// Delayed reschedules due within this long of each other share an eval.
const BATCH_WINDOW: i64 = 5_000_000_000;

/// Why a node cannot keep its allocations as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taint {
    /// Garbage-collected: the node is gone.
    Gone,
    Down,
    Disconnected,
    /// Draining: only allocations marked `Migrate` move, and each one
    /// stops only once its replacement is placed.
    Draining,
    /// Draining past its deadline (or forced): allocations marked
    /// `Migrate` stop whether or not a replacement finds room.
    DrainDeadline,
}

impl Taint {
    pub fn loses_allocs(self) -> bool {
        !matches!(self, Self::Draining | Self::DrainDeadline)
    }
}

/// An allocation to stop.
#[derive(Debug, Clone)]
pub struct Stop {
    pub alloc: Arc<Allocation>,
    pub description: &'static str,
    /// Mark it `ClientStatus: lost` (its node is down or gone).
    pub lost: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementKind {
    New,
    Lost,
    Reschedule,
    Destructive,
    Migrate,
}

/// An allocation to place.
#[derive(Debug, Clone)]
pub struct Placement {
    pub group: String,
    pub name: String,
    pub kind: PlacementKind,
    pub previous: Option<Arc<Allocation>>,
    /// Stop `previous` with this description if (and only if) the
    /// placement succeeds: reschedules and destructive updates.
    pub stop_previous: Option<&'static str>,
}

/// What the reconciler decided.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub stops: Vec<Stop>,
    pub placements: Vec<Placement>,
    /// Allocations updated in place to the new job version.
    pub inplace: Vec<Allocation>,
    /// Existing allocations with a new `FollowupEvalID`.
    pub attribute_updates: Vec<Allocation>,
    pub followup_evals: Vec<Evaluation>,
}

/// What the reconciler reads.
pub struct Input<'a> {
    /// `None` when the job was purged.
    pub job: Option<&'a Arc<Job>>,
    /// Every allocation of the job, terminal ones included.
    pub allocs: &'a [Arc<Allocation>],
    pub tainted: &'a HashMap<String, Taint>,
    pub eval: &'a Evaluation,
    /// Unix nanoseconds.
    pub now: i64,
}

fn job_modify_index(alloc: &Allocation) -> Option<u64> {
    alloc.job.as_ref().map(|job| job.job_modify_index)
}

/// Whether an allocation of `old` must be replaced to run `new`: any change
/// to the tasks, the group's networks, disk, volumes or meta, or the job's
/// meta (simpler than Nomad's `tasksUpdated`, and on the safe side: a
/// change Nomad applies in place may be destructive here, never the other
/// way round).
pub fn tasks_updated(old_job: &Job, old: &TaskGroup, new_job: &Job, new: &TaskGroup) -> bool {
    old.tasks != new.tasks
        || old.networks != new.networks
        || old.ephemeral_disk != new.ephemeral_disk
        || old.volumes != new.volumes
        || old.meta != new.meta
        || old_job.meta != new_job.meta
}

fn stop_all(input: &Input<'_>, out: &mut Reconciled) {
    for alloc in input.allocs {
        if alloc.terminal() {
            continue;
        }
        let lost = input
            .tainted
            .get(&alloc.node_id)
            .is_some_and(|t| t.loses_allocs());
        out.stops.push(Stop {
            alloc: alloc.clone(),
            description: if lost { DESC_LOST } else { DESC_NOT_NEEDED },
            lost,
        });
    }
}

/// Runs the reconciler. `ids` names the follow-up evals.
pub fn reconcile(input: &Input<'_>, ids: &mut dyn IdGenerator) -> Reconciled {
    let mut out = Reconciled::default();
    let job = match input.job {
        Some(job) if !job.stop => job,
        _ => {
            stop_all(input, &mut out);
            return out;
        }
    };
    let mut by_group: HashMap<&str, Vec<&Arc<Allocation>>> = HashMap::new();
    for alloc in input.allocs {
        by_group
            .entry(alloc.task_group.as_str())
            .or_default()
            .push(alloc);
    }
    let mut later: Vec<(i64, Arc<Allocation>)> = Vec::new();
    for (name, allocs) in &by_group {
        if job.group(name).is_none_or(|g| g.count <= 0) {
            for alloc in allocs.iter().filter(|a| !a.terminal()) {
                let lost = input
                    .tainted
                    .get(&alloc.node_id)
                    .is_some_and(|t| t.loses_allocs());
                out.stops.push(Stop {
                    alloc: (*alloc).clone(),
                    description: if lost { DESC_LOST } else { DESC_NOT_NEEDED },
                    lost,
                });
            }
        }
    }
    for group in job.task_groups.iter().filter(|g| g.count > 0) {
        let allocs = by_group.remove(group.name.as_str()).unwrap_or_default();
        reconcile_group(input, job, group, &allocs, &mut out, &mut later);
    }
    followups(input, job, later, ids, &mut out);
    out
}

fn reconcile_group(
    input: &Input<'_>,
    job: &Arc<Job>,
    group: &TaskGroup,
    allocs: &[&Arc<Allocation>],
    out: &mut Reconciled,
    later: &mut Vec<(i64, Arc<Allocation>)>,
) {
    let batch = job.job_type == JOB_TYPE_BATCH;
    let mut untainted: Vec<Arc<Allocation>> = Vec::new();
    let mut migrate: Vec<Arc<Allocation>> = Vec::new();
    let mut lost: Vec<Arc<Allocation>> = Vec::new();
    let mut now: Vec<Arc<Allocation>> = Vec::new();
    for alloc in allocs.iter().map(|a| (*a).clone()) {
        let taint = input.tainted.get(&alloc.node_id).copied();
        if alloc.server_terminal() {
            // Told to stop but still running on a node that is gone: lost.
            if !alloc.client_terminal() && taint.is_some_and(Taint::loses_allocs) {
                out.stops.push(Stop {
                    alloc: alloc.clone(),
                    description: DESC_LOST,
                    lost: true,
                });
            }
            // A drained batch allocation keeps counting and is not replaced.
            // (An evicted one is replaced: preemption wins over the drain.)
            if batch
                && alloc.desired_transition.migrate_disable_placement == Some(true)
                && alloc.desired_status != ALLOC_DESIRED_EVICT
            {
                untainted.push(alloc);
            }
            continue;
        }
        if alloc.client_terminal() {
            if batch && job_modify_index(&alloc) != Some(job.job_modify_index) {
                continue; // an older version's finished work: not counted
            }
            if !alloc.next_allocation.is_empty() {
                continue; // already replaced
            }
            if !batch
                && matches!(
                    alloc.client_status.as_str(),
                    ALLOC_CLIENT_COMPLETE | ALLOC_CLIENT_LOST
                )
            {
                continue; // a service allocation that ended is replaced
            }
            let candidate = alloc.client_status == ALLOC_CLIENT_FAILED
                || (batch && alloc.desired_transition.reschedule == Some(true));
            if !candidate {
                untainted.push(alloc); // completed batch work counts
                continue;
            }
            if alloc.desired_transition.force_reschedule == Some(true) {
                now.push(alloc);
                continue;
            }
            let policy = group.reschedule_policy.as_ref();
            match policy.and_then(|p| reschedule::next_reschedule_time(p, &alloc)) {
                Some(when)
                    if alloc.followup_eval_id == input.eval.id
                        || when <= input.now + NOW_WINDOW =>
                {
                    now.push(alloc)
                }
                Some(when) if alloc.followup_eval_id.is_empty() => {
                    later.push((when, alloc.clone()));
                    untainted.push(alloc);
                }
                _ => untainted.push(alloc),
            }
            continue;
        }
        match taint {
            _ if alloc.desired_transition.migrate == Some(true) => migrate.push(alloc),
            Some(t) if t.loses_allocs() => lost.push(alloc),
            _ => untainted.push(alloc),
        }
    }

    let mut index = NameIndex::new(&job.id, &group.name);
    for alloc in untainted.iter().chain(&migrate).chain(&now).chain(&lost) {
        index.mark(alloc);
    }
    for alloc in &lost {
        out.stops.push(Stop {
            alloc: alloc.clone(),
            description: DESC_LOST,
            lost: true,
        });
    }
    let count = group.count as usize;
    // Scale down: migrating allocations first, then the highest indexes.
    let mut excess = (untainted.len() + migrate.len()).saturating_sub(count);
    names::sort_by_index_desc(&mut migrate);
    while excess > 0 && !migrate.is_empty() {
        let alloc = migrate.remove(0);
        index.unmark(&alloc);
        out.stops.push(Stop {
            alloc,
            description: DESC_NOT_NEEDED,
            lost: false,
        });
        excess -= 1;
    }
    // Live allocations go before finished ones, so finished batch work is
    // the last to be "stopped".
    names::sort_by_index_desc(&mut untainted);
    untainted.sort_by_key(|a| a.client_terminal());
    while excess > 0 && !untainted.is_empty() {
        let alloc = untainted.remove(0);
        index.unmark(&alloc);
        out.stops.push(Stop {
            alloc,
            description: DESC_NOT_NEEDED,
            lost: false,
        });
        excess -= 1;
    }
    for alloc in &migrate {
        // Before the drain's deadline a migrating allocation keeps running
        // until its replacement is placed (Nomad stops it either way and a
        // full cluster loses the work, #16117); after it, or with no
        // replacement wanted, it stops regardless.
        let replace = alloc.desired_transition.migrate_disable_placement != Some(true);
        let deadline = input.tainted.get(&alloc.node_id) == Some(&Taint::DrainDeadline);
        if !replace || deadline {
            out.stops.push(Stop {
                alloc: alloc.clone(),
                description: DESC_MIGRATING,
                lost: false,
            });
        }
        if replace {
            out.placements.push(Placement {
                group: group.name.clone(),
                name: alloc.name.clone(),
                kind: PlacementKind::Migrate,
                previous: Some(alloc.clone()),
                stop_previous: (!deadline).then_some(DESC_MIGRATING),
            });
        }
    }
    let mut existing = untainted.len() + migrate.len();
    for alloc in now {
        if existing >= count {
            out.stops.push(Stop {
                alloc,
                description: DESC_NOT_NEEDED,
                lost: false,
            });
            continue;
        }
        existing += 1;
        out.placements.push(Placement {
            group: group.name.clone(),
            name: alloc.name.clone(),
            kind: PlacementKind::Reschedule,
            previous: Some(alloc),
            stop_previous: Some(DESC_RESCHEDULED),
        });
    }
    for alloc in lost {
        if existing >= count {
            break;
        }
        existing += 1;
        out.placements.push(Placement {
            group: group.name.clone(),
            name: alloc.name.clone(),
            kind: PlacementKind::Lost,
            previous: Some(alloc),
            stop_previous: None,
        });
    }
    while existing < count {
        existing += 1;
        out.placements.push(Placement {
            group: group.name.clone(),
            name: index.next_name(),
            kind: PlacementKind::New,
            previous: None,
            stop_previous: None,
        });
    }
    // Updates to the new job version.
    names::sort_by_index_asc(&mut untainted);
    for alloc in untainted {
        if alloc.terminal() || job_modify_index(&alloc) == Some(job.job_modify_index) {
            continue;
        }
        let Some(old_job) = alloc.job.as_ref() else {
            continue;
        };
        let destructive = match old_job.group(&group.name) {
            Some(old_group) => tasks_updated(old_job, old_group, job, group),
            None => true,
        };
        if destructive {
            out.placements.push(Placement {
                group: group.name.clone(),
                name: alloc.name.clone(),
                kind: PlacementKind::Destructive,
                previous: Some(alloc),
                stop_previous: Some(DESC_UPDATING),
            });
        } else {
            let mut updated = (*alloc).clone();
            updated.job = Some(job.clone());
            updated.eval_id = input.eval.id.clone();
            out.inplace.push(updated);
        }
    }
}

/// Follow-up evals for delayed reschedules, one per 5 s batch.
fn followups(
    input: &Input<'_>,
    job: &Job,
    mut later: Vec<(i64, Arc<Allocation>)>,
    ids: &mut dyn IdGenerator,
    out: &mut Reconciled,
) {
    later.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let mut current: Option<(i64, String)> = None;
    for (when, alloc) in later {
        let eval_id = match &current {
            Some((start, id)) if when - start <= BATCH_WINDOW => id.clone(),
            _ => {
                let id = ids.next_id();
                // Nomad's quirk: only the first batch is `alloc-reschedule`.
                let trigger = if out.followup_evals.is_empty() {
                    TRIGGER_ALLOC_RESCHEDULE
                } else {
                    TRIGGER_RETRY_FAILED_ALLOC
                };
                out.followup_evals.push(Evaluation {
                    id: id.clone(),
                    namespace: job.namespace.clone(),
                    priority: job.priority,
                    eval_type: job.job_type.clone(),
                    triggered_by: trigger.to_string(),
                    job_id: job.id.clone(),
                    job_modify_index: job.job_modify_index,
                    status: EVAL_STATUS_PENDING.to_string(),
                    status_description: FOLLOWUP_DESCRIPTION.to_string(),
                    wait_until: chrono::DateTime::from_timestamp_nanos(when).into(),
                    previous_eval: input.eval.id.clone(),
                    ..Evaluation::default()
                });
                current = Some((when, id.clone()));
                id
            }
        };
        let mut updated = (*alloc).clone();
        updated.followup_eval_id = eval_id;
        out.attribute_updates.push(updated);
    }
}
