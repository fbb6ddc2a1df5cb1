//! The leader's reactions to what changes under the evaluation pipeline:
//! nodes going down or becoming usable (`node-update` evaluations,
//! coalesced before Raft), and room appearing (blocked evaluations sent
//! back to pending).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_PENDING, TRIGGER_NODE_UPDATE,
};
use caravan_api_types::job::{Job, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM};
use caravan_api_types::node::{Node, ELIGIBLE, NODE_STATUS_DOWN, NODE_STATUS_READY};
use caravan_state::{new_eval, Command, State};

use crate::leader::scheduling::{count, delayed, now_nanos, SchedulerStats};

/// Every blocked evaluation back to pending, as one write (none if there
/// is none): room may have appeared that they can use.
pub(crate) fn unblock_all(state: &State, now: i64) -> Option<Command> {
    let evals: Vec<Evaluation> = unblocked(state, now).collect();
    (!evals.is_empty()).then_some(Command::EvalsUpsert { evals })
}

fn unblocked(state: &State, now: i64) -> impl Iterator<Item = Evaluation> + '_ {
    state
        .evals_with_status(EVAL_STATUS_BLOCKED)
        .map(move |eval| Evaluation {
            status: EVAL_STATUS_PENDING.into(),
            modify_time: now.max(eval.modify_time + 1),
            ..(**eval).clone()
        })
}

/// What the pipeline remembers of each node between changes, to tell
/// which ones just went down or just became usable.
pub(crate) struct NodeReactions {
    seen: HashMap<String, (String, String)>,
}

impl NodeReactions {
    pub(crate) fn new(state: &State) -> Self {
        Self {
            seen: state
                .nodes()
                .map(|node| (node.id.clone(), usable_key(node)))
                .collect(),
        }
    }

    /// The evaluations a change to the nodes calls for, as one write.
    ///
    /// Coalesced before Raft (Nomad writes one per job per node change,
    /// and flapping nodes pile them up, scheduling.md §13): a job gets no
    /// new evaluation while one of its pending evaluations is still
    /// waiting its turn, since that one plans on a state that already
    /// holds this change. Only a job whose evaluation is being planned
    /// (on an older snapshot), delayed, or absent gets a new one.
    pub(crate) fn react(
        &mut self,
        state: &State,
        in_flight: &BTreeSet<String>,
        stats: &SchedulerStats,
    ) -> Option<Command> {
        let now = now_nanos();
        let waiting: BTreeSet<String> = state
            .evals_with_status(EVAL_STATUS_PENDING)
            .filter(|eval| !delayed(eval, now))
            .map(|eval| caravan_state::ns_key(&eval.namespace, &eval.job_id))
            .filter(|key| !in_flight.contains(key))
            .collect();
        let mut evals = NodeEvals {
            covered: waiting,
            evals: BTreeMap::new(),
            coalesced: 0,
            now,
        };
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
                            evals.add(job, node);
                        }
                    }
                }
                if now_usable {
                    for job in state
                        .jobs_by_type(JOB_TYPE_SYSTEM)
                        .chain(state.jobs_by_type(JOB_TYPE_SYSBATCH))
                        .filter(|job| !job.stop)
                    {
                        evals.add(job, node);
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
        count(&stats.node_evals_coalesced, evals.coalesced);
        let mut evals = evals.evals;
        if unblock {
            for eval in unblocked(state, now) {
                evals.entry(eval.id.clone()).or_insert(eval);
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

/// The `node-update` evaluations of one reaction: one per job at most,
/// none for a job already covered by a waiting evaluation.
struct NodeEvals {
    covered: BTreeSet<String>,
    evals: BTreeMap<String, Evaluation>,
    /// Evaluations not written because the job was covered already.
    coalesced: usize,
    now: i64,
}

impl NodeEvals {
    fn add(&mut self, job: &Job, node: &Node) {
        if !self
            .covered
            .insert(caravan_state::ns_key(&job.namespace, &job.id))
        {
            self.coalesced += 1;
            return;
        }
        let mut eval = new_eval(
            job,
            TRIGGER_NODE_UPDATE,
            uuid::Uuid::new_v4().to_string(),
            self.now,
        );
        eval.node_id = node.id.clone();
        eval.node_modify_index = node.modify_index;
        self.evals.insert(eval.id.clone(), eval);
    }
}
