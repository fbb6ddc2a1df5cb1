//! The leader's node drainer (Nomad's `nomad/drainer`), a leader duty:
//! started when leadership is established, stopped when it is lost. It
//! keeps no state of its own: every pass decides from the latest snapshot
//! ([`decide`]), so a new leader resumes every drain where the state left
//! it, deadlines included (they are stored in the node's strategy).
//!
//! A pass runs when nodes, allocations or evaluations change (a drain set,
//! a client's report, a blocked evaluation), and at the nearest deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::eval::Evaluation;
use caravan_state::job_commands::AllocsTransition;
use caravan_state::{Command, Table};
use chrono::{DateTime, Utc};

use crate::leader::context::LeaderServer;
use crate::leader::lifecycle::LeaderToken;

pub mod decide;

pub use decide::{blocked_message, decide, Decision, Reported};

/// Changes arriving within this long of each other are handled in one pass
/// (Nomad batches for 1 s; a shorter window keeps drains responsive).
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// At most this many allocations marked in one Raft entry (Nomad shards at
/// about 7,281 IDs).
const MARKS_PER_ENTRY: usize = 5_000;

/// Drives every drain until `token`'s term of leadership ends.
pub async fn run<S: LeaderServer + ?Sized>(server: Arc<S>, token: LeaderToken) {
    let store = server.store();
    let mut nodes = store.watch(Table::Nodes);
    let mut allocs = store.watch(Table::Allocs);
    let mut evals = store.watch(Table::Evals);
    let mut reported = Reported::new();
    while !token.is_cancelled() {
        let snapshot = server.store().snapshot();
        let now = Utc::now();
        // What was told about nodes no longer draining is forgotten.
        reported.retain(|(node_id, _, _)| {
            snapshot
                .node(node_id)
                .is_some_and(|node| node.is_draining())
        });
        let mut new_id = || uuid::Uuid::new_v4().to_string();
        let decision = decide(&snapshot, now, &reported, &mut new_id);
        let wake_at = decision.wake_at;
        let told: Vec<_> = decision
            .events
            .iter()
            .filter_map(|(node_id, event)| {
                let details = event.details.as_ref()?;
                Some((
                    node_id.clone(),
                    details.get("eval_id")?.clone(),
                    details.get("group")?.clone(),
                ))
            })
            .collect();
        let failed = !decision.is_empty() && !write(&*server, decision).await;
        if !failed {
            reported.extend(told);
        }
        // A failed write is tried again after a while; otherwise the next
        // change or deadline brings the drainer round (a deadline that
        // passed during the write: at once).
        let retry = if failed {
            Duration::from_secs(1)
        } else {
            wake_at
                .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600))
        };
        // Biased: a simulation must replay branch choices from its seed.
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            changed = nodes.changed() => if changed.is_err() { return },
            changed = allocs.changed() => if changed.is_err() { return },
            changed = evals.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(retry) => {}
        }
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(BATCH_WINDOW) => {}
        }
    }
}

/// Writes one pass's decision ([`commands`]). Returns whether everything
/// was written.
async fn write<S: LeaderServer + ?Sized>(server: &S, decision: Decision) -> bool {
    let mut ok = true;
    for command in commands(decision, Utc::now()) {
        let kind = command.kind();
        if let Err(error) = server.apply(command).await {
            tracing::warn!(%error, kind, "a drainer write failed");
            ok = false;
        }
    }
    ok
}

/// The writes of one pass's decision, in order: marks with their
/// evaluations (sharded, each entry carrying the evaluations of the jobs it
/// marks, so no mark is ever committed without the evaluation that acts on
/// it), events, then completions.
pub fn commands(decision: Decision, now: DateTime<Utc>) -> Vec<Command> {
    let now_nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let empty = || AllocsTransition {
        transitions: Default::default(),
        evals: Vec::new(),
        now: now_nanos,
    };
    let mut commands = Vec::new();
    let mut entry = empty();
    let mut used = HashSet::new();
    for (_, marks) in decision.marks {
        for (id, transition) in marks.transitions {
            if entry.transitions.len() >= MARKS_PER_ENTRY {
                let full = std::mem::replace(&mut entry, empty());
                commands.push(Command::AllocsTransition(Box::new(full)));
            }
            add_eval(&mut entry.evals, &marks.eval, &mut used);
            entry.transitions.insert(id, transition);
        }
    }
    if !entry.transitions.is_empty() {
        commands.push(Command::AllocsTransition(Box::new(entry)));
    }
    if !decision.evals.is_empty() {
        commands.push(Command::EvalsUpsert {
            evals: decision.evals,
        });
    }
    for (node_id, event) in decision.events {
        commands.push(Command::NodeEmitEvents {
            node_id,
            events: vec![event],
        });
    }
    for completion in decision.completed {
        commands.push(Command::NodeDrainComplete {
            node_id: completion.node_id,
            deadline_reached: completion.deadline_reached,
            now,
        });
    }
    commands
}

/// Adds `eval` to an entry once. A job whose marks span entries gets its
/// evaluation in each, under a fresh ID after the first (`used`).
fn add_eval(evals: &mut Vec<Evaluation>, eval: &Evaluation, used: &mut HashSet<String>) {
    if evals
        .iter()
        .any(|e| e.job_id == eval.job_id && e.namespace == eval.namespace)
    {
        return;
    }
    let mut eval = eval.clone();
    if !used.insert(eval.id.clone()) {
        eval.id = uuid::Uuid::new_v4().to_string();
    }
    evals.push(eval);
}
