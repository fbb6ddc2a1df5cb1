//! Garbage collection on the servers (Nomad's core scheduler), a leader
//! duty: every `job_gc_interval` the leader decides from the latest
//! snapshot what is old and finished ([`decide`]) and removes it in
//! bounded writes. `PUT /v1/system/gc` runs the same decision with
//! [`Thresholds::forced`] on whichever server answers; the writes check
//! at apply time that what they remove has not changed since
//! (`GcCollect`), so a decision made on a stale snapshot is safe.

use std::sync::Arc;

use caravan_state::job_commands::GcCollect;
use caravan_state::{Command, State};
use chrono::{DateTime, Utc};

use crate::leader::context::LeaderServer;
use crate::leader::lifecycle::LeaderToken;

pub mod decide;

pub use crate::options::GcConfig;
pub use decide::{decide, Thresholds, Verdict};

/// At most this many objects are removed by one Raft entry (a job's
/// evaluations and allocations are never split between entries).
const OBJECTS_PER_ENTRY: usize = 5_000;

/// Collects every `interval` until `token`'s term of leadership ends.
pub async fn run<S: LeaderServer + ?Sized>(server: Arc<S>, token: LeaderToken) {
    let config = server.gc_config();
    loop {
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        let snapshot = server.store().snapshot();
        let verdict = decide(&snapshot, Utc::now(), &config.thresholds);
        drop(snapshot);
        let summary = summary(&verdict);
        let removes = !verdict.collect.is_empty();
        let mut failed = false;
        for command in commands(verdict.collect) {
            if let Err(error) = server.apply(command).await {
                tracing::warn!(%error, "a garbage collection write failed");
                failed = true;
                break;
            }
        }
        if failed {
            continue;
        }
        if removes {
            tracing::info!("garbage collection: {summary}");
        } else if !summary.is_empty() {
            tracing::debug!("garbage collection: {summary}");
        }
    }
}

/// A forced collection's decision (`PUT /v1/system/gc`): everything
/// finished, whatever its age.
pub fn decide_forced(state: &State, now: DateTime<Utc>) -> Verdict {
    decide(state, now, &Thresholds::forced())
}

/// The writes of one collection, each at most [`OBJECTS_PER_ENTRY`]
/// objects (a job's parts together).
pub fn commands(collect: GcCollect) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut entry = GcCollect::default();
    let full = |entry: &GcCollect, more: usize| {
        !entry.is_empty() && entry.len() + more > OBJECTS_PER_ENTRY
    };
    let mut push = |entry: &mut GcCollect| {
        commands.push(Command::GcCollect(Box::new(std::mem::take(entry))));
    };
    for job in collect.jobs {
        let size = job.evals.len() + job.allocs.len() + usize::from(job.purge);
        if full(&entry, size) {
            push(&mut entry);
        }
        entry.jobs.push(job);
    }
    for node in collect.nodes {
        if full(&entry, 1) {
            push(&mut entry);
        }
        entry.nodes.push(node);
    }
    for token in collect.tokens {
        if full(&entry, 1) {
            push(&mut entry);
        }
        entry.tokens.push(token);
    }
    if !entry.is_empty() {
        push(&mut entry);
    }
    commands
}

/// What a pass removed and kept, for the log: counts only (never a
/// token's ID).
pub fn summary(verdict: &Verdict) -> String {
    let collect = &verdict.collect;
    let count = |pick: fn(&caravan_state::job_commands::JobCollected) -> usize| {
        collect.jobs.iter().map(pick).sum::<usize>()
    };
    let jobs = count(|job| usize::from(job.purge));
    let evals = count(|job| job.evals.len());
    let allocs = count(|job| job.allocs.len());
    let mut parts = Vec::new();
    if !collect.is_empty() {
        parts.push(format!(
            "removed jobs={jobs} evaluations={evals} allocations={allocs} nodes={} \
             expired_acl_tokens={}",
            collect.nodes.len(),
            collect.tokens.len()
        ));
    }
    let kept: Vec<String> = verdict
        .kept
        .iter()
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect();
    if !kept.is_empty() {
        parts.push(format!("kept ({})", kept.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests;
