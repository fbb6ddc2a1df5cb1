//! The node allocation RPCs: a client's blocking read of its own
//! allocations (Nomad's `Node.GetClientAllocs`) and its batched status
//! reports (Nomad's `Node.UpdateAlloc`).
//!
//! The read is served by whichever server the client asked, from local
//! state (Nomad allows stale reads here): the client reconciles by each
//! allocation's `AllocModifyIndex`, so a lagging follower only delays it.
//! A client's first read after it starts asks for a consistent one, which
//! a follower answers only once it has applied what the leader had
//! committed (Nomad's client makes its first read consistent too). The
//! write runs on the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use caravan_api_types::alloc::{
    Allocation, ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_LOST,
    ALLOC_CLIENT_PENDING, ALLOC_CLIENT_RUNNING, ALLOC_CLIENT_UNKNOWN,
};
use caravan_api_types::eval::{Evaluation, TRIGGER_RETRY_FAILED_ALLOC};
use caravan_rpc::RpcError;
use caravan_rpc::{paths, AllocUpdate, NodeAllocsReply, NodeAllocsRequest, NodeAllocsUpdate};
use caravan_scheduler::reconcile::reschedule::next_reschedule_time;
use caravan_state::job_commands::{AllocClientUpdate, AllocsClientUpdate};
use caravan_state::ALLOCS_BY_NODE;
use caravan_state::{new_eval, ns_key, Command, CommandResult, State, Table, WatchKey};
use rand::Rng;

use super::node::short;
use crate::server::Server;

/// The longest a client's allocation query is held (Nomad caps blocking
/// queries at 10 minutes).
pub const MAX_ALLOCS_WAIT: Duration = Duration::from_secs(600);

impl Server {
    /// A client's allocations (Nomad's `Node.GetClientAllocs`): answered
    /// at once when `min_index` is 0 or the node's allocations are past
    /// it, otherwise held until a write touches them or `wait_ms` (at most
    /// [`MAX_ALLOCS_WAIT`], plus up to 1/16 of jitter) passes. Only writes
    /// to this node's allocations (placing, changing or removing one) wake
    /// it. A `consistent` request is answered from a state at least as new
    /// as the leader's commit index when it arrived.
    pub async fn node_allocs(
        &self,
        request: NodeAllocsRequest,
    ) -> Result<NodeAllocsReply, RpcError> {
        self.authenticated_node(&request.node_id, &request.secret_id)?;
        if request.consistent {
            self.read_barrier().await?;
        }
        let keys = [WatchKey::Index(
            Table::Allocs,
            ALLOCS_BY_NODE,
            request.node_id.clone(),
        )];
        let wait = Duration::from_millis(request.wait_ms).min(MAX_ALLOCS_WAIT);
        let deadline = tokio::time::Instant::now() + with_jitter(wait);
        // Registered before the read, so a write published after the read
        // fires it.
        let watch = self.store.watch_keys(&keys);
        let reply = node_allocs_reply(&self.store.snapshot(), &request.node_id, request.min_index);
        if request.min_index == 0 || reply.index > request.min_index || wait.is_zero() {
            return Ok(reply);
        }
        // A write that fires the watch changed this node's allocations and
        // moved their index (a removal too, see `node_allocs_reply`).
        tokio::select! {
            _ = watch.fired() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        Ok(node_allocs_reply(
            &self.store.snapshot(),
            &request.node_id,
            request.min_index,
        ))
    }

    /// A client's batch of allocation reports (Nomad's `Node.UpdateAlloc`),
    /// applied on the leader in one write, with an `alloc-failure`
    /// evaluation for each job one of whose allocations just failed and may
    /// be rescheduled. Reports the node may not make (another node's
    /// allocation, a status that is not a client status) are left out and
    /// logged; the batch is refused only when nothing in it may be applied.
    /// Returns the write's index (0 for an empty batch).
    pub async fn node_update_allocs(&self, update: NodeAllocsUpdate) -> Result<u64, RpcError> {
        if !self.leads_or_waits().await? {
            return self
                .forward_to_leader(paths::NODE_ALLOCS_UPDATE, &update)
                .await;
        }
        self.authenticated_node(&update.node_id, &update.secret_id)?;
        if update.allocs.is_empty() {
            return Ok(0);
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let checked = client_update_command(
            &self.store.snapshot(),
            &update.node_id,
            update.allocs,
            now,
            || uuid::Uuid::new_v4().to_string(),
        );
        if let Some(first) = checked.refused.first() {
            // IDs and reasons only: the request's secret is never logged.
            let allocs: Vec<String> = checked.refused.iter().map(|r| short(&r.id)).collect();
            tracing::warn!(
                node_id = %short(&update.node_id),
                refused = ?allocs,
                reason = %first.reason,
                "refused allocation updates a node may not make"
            );
            if checked.command.updates.is_empty() {
                return Err(first.reason.clone());
            }
        }
        let command = checked.command;
        let write = self
            .apply(Command::AllocsClientUpdate(Box::new(command)))
            .await?;
        match write.result {
            CommandResult::Refused(reason) => Err(RpcError::Refused(reason)),
            _ => Ok(write.index),
        }
    }
}

/// Nomad adds up to wait/16 of random jitter so that many waiters do not
/// all come back at once.
fn with_jitter(wait: Duration) -> Duration {
    let limit = u64::try_from(wait.as_nanos() / 16).unwrap_or(u64::MAX);
    if limit == 0 {
        return wait;
    }
    wait + Duration::from_nanos(rand::rng().random_range(0..limit))
}

/// The node's allocations as a client reads them: the index is that of
/// the last write to them, a removal included (`State::node_allocs_index`,
/// never 0), so it never goes back and a client that ignores older answers
/// still learns of a garbage-collected allocation; every allocation with
/// its `AllocModifyIndex`, and in full those whose `AllocModifyIndex` is
/// past `min_index` (what the client has not seen).
pub fn node_allocs_reply(state: &State, node_id: &str, min_index: u64) -> NodeAllocsReply {
    let mut index = state.node_allocs_index(node_id);
    let mut allocs = BTreeMap::new();
    let mut changed = Vec::new();
    for alloc in state.allocs_by_node(node_id) {
        index = index.max(alloc.modify_index);
        allocs.insert(alloc.id.clone(), alloc.alloc_modify_index);
        if alloc.alloc_modify_index > min_index {
            changed.push(Allocation::clone(alloc));
        }
    }
    NodeAllocsReply {
        index: index.max(1),
        allocs,
        changed,
    }
}

/// One report a node may not make, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedReport {
    pub id: String,
    pub reason: RpcError,
}

/// A node's batch of reports, checked: the write it makes and the reports
/// left out of it.
#[derive(Debug, Clone)]
pub struct CheckedUpdate {
    pub command: AllocsClientUpdate,
    pub refused: Vec<RefusedReport>,
}

/// The client statuses a client may report (Nomad's client statuses).
fn validate_client_status(status: &str) -> Result<(), RpcError> {
    match status {
        ALLOC_CLIENT_PENDING
        | ALLOC_CLIENT_RUNNING
        | ALLOC_CLIENT_COMPLETE
        | ALLOC_CLIENT_FAILED
        | ALLOC_CLIENT_LOST
        | ALLOC_CLIENT_UNKNOWN => Ok(()),
        other => Err(RpcError::Invalid(format!(
            "invalid client status for allocation: {:?}",
            short(other)
        ))),
    }
}

/// The write a node's batch of reports makes, checked against `state`:
/// a report whose status is not a client status, or about an allocation
/// on another node, is refused and left out, the others still apply (one
/// bad report must not cost the node's other allocations their status);
/// one about an allocation that no longer exists (garbage collected) is
/// skipped. An allocation that turns `failed` while the servers still want
/// it running, whose job exists, is not stopped and whose group's
/// reschedule policy allows another attempt, gets its job one
/// `alloc-failure` evaluation (Nomad's `Node.UpdateAlloc`), which the
/// scheduler acts on: at once, or through a delayed follow-up.
pub fn client_update_command(
    state: &State,
    node_id: &str,
    reports: Vec<AllocUpdate>,
    now: i64,
    mut new_id: impl FnMut() -> String,
) -> CheckedUpdate {
    let mut updates = Vec::with_capacity(reports.len());
    let mut refused = Vec::new();
    let mut failed_jobs = BTreeSet::new();
    let mut evals: Vec<Evaluation> = Vec::new();
    for report in reports {
        if let Err(reason) = validate_client_status(&report.client_status) {
            refused.push(RefusedReport {
                id: report.id,
                reason,
            });
            continue;
        }
        let Some(stored) = state.alloc(&report.id) else {
            continue;
        };
        if stored.node_id != node_id {
            let reason = RpcError::Invalid(format!(
                "allocation {:?} is not on node {:?}",
                short(&report.id),
                short(node_id)
            ));
            refused.push(RefusedReport {
                id: report.id,
                reason,
            });
            continue;
        }
        let update = AllocClientUpdate {
            id: report.id,
            client_status: report.client_status,
            client_description: report.client_description,
            // An empty map keeps the stored task states (a report of the
            // status alone).
            task_states: (!report.task_states.is_empty()).then_some(report.task_states),
            deployment_status: report.deployment_status,
        };
        if let Some(eval) = failure_eval(state, stored, &update, now, &mut failed_jobs) {
            evals.push(Evaluation {
                id: new_id(),
                ..eval
            });
        }
        updates.push(update);
    }
    CheckedUpdate {
        command: AllocsClientUpdate {
            updates,
            evals,
            now,
        },
        refused,
    }
}

/// The `alloc-failure` evaluation `update` calls for, if it is the first
/// for its job in this batch (`failed_jobs` remembers the jobs already
/// given one). The ID is left for the caller to fill.
fn failure_eval(
    state: &State,
    stored: &Allocation,
    update: &AllocClientUpdate,
    now: i64,
    failed_jobs: &mut BTreeSet<String>,
) -> Option<Evaluation> {
    if update.client_status != ALLOC_CLIENT_FAILED
        || stored.client_status == ALLOC_CLIENT_FAILED
        || stored.server_terminal()
        || !stored.followup_eval_id.is_empty()
    {
        return None;
    }
    let key = ns_key(&stored.namespace, &stored.job_id);
    if failed_jobs.contains(&key) {
        return None;
    }
    let job = state.job(&stored.namespace, &stored.job_id)?;
    if job.stop {
        return None;
    }
    let policy = job.group(&stored.task_group)?.reschedule_policy.as_ref()?;
    // The allocation as the scheduler will see it after this write: its
    // failure time comes from the new task states or this write's time.
    let failed = Allocation {
        client_status: update.client_status.clone(),
        task_states: update
            .task_states
            .clone()
            .or_else(|| stored.task_states.clone()),
        modify_time: now,
        ..stored.clone()
    };
    next_reschedule_time(policy, &failed)?;
    failed_jobs.insert(key);
    Some(new_eval(
        job,
        TRIGGER_RETRY_FAILED_ALLOC,
        String::new(),
        now,
    ))
}

#[cfg(test)]
#[path = "node_allocs_tests.rs"]
mod tests;
