//! The leader's reactions to what changes under the evaluation pipeline:
//! nodes going down or becoming usable (`node-update` evaluations,
//! coalesced before Raft), and room appearing (blocked evaluations sent
//! back to pending).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caravan_api_types::eval::{
    Evaluation, EVAL_STATUS_BLOCKED, EVAL_STATUS_PENDING, TRIGGER_MAX_PLANS, TRIGGER_NODE_UPDATE,
};
use caravan_api_types::job::{Job, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM};
use caravan_api_types::node::{Node, ELIGIBLE, NODE_STATUS_DOWN, NODE_STATUS_READY};
use caravan_state::{new_eval, Command, State};

use crate::leader::clock::{delayed, now_nanos};
use crate::leader::stats::{count, SchedulerStats};

/// Every blocked evaluation back to pending, as one write (none if there
/// is none): room may have appeared that they can use.
pub(crate) fn unblock_all(state: &State, now: i64) -> Option<Command> {
    let evals: Vec<Evaluation> = unblocked(state, now).collect();
    (!evals.is_empty()).then_some(Command::EvalsUpsert { evals })
}

/// The blocked evaluations left by placement conflicts back to pending.
pub(crate) fn unblock_conflicts(state: &State, now: i64) -> Option<Command> {
    let evals: Vec<Evaluation> = unblocked(state, now)
        .filter(|eval| eval.triggered_by == TRIGGER_MAX_PLANS)
        .collect();
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
    seen: HashMap<String, Seen>,
    /// What `seen` becomes once the last reaction's write committed (a
    /// failed write leaves the change to be reacted to again).
    reacted: Option<HashMap<String, Seen>>,
}

/// A node as the reactions last saw it.
#[derive(Clone, PartialEq)]
struct Seen {
    /// Status and eligibility: what decides whether its allocations stay
    /// and whether it takes new ones.
    usable: (String, String),
    /// Any other change (resources, attributes, drivers, class) may let a
    /// blocked evaluation fit.
    modify_index: u64,
}

impl Seen {
    fn of(node: &Node) -> Self {
        Self {
            usable: usable_key(node),
            modify_index: node.modify_index,
        }
    }
}

impl NodeReactions {
    /// Starts a term: every node counts as seen, except down nodes that
    /// still hold live allocations (the previous leader may have fallen
    /// before their evaluations were written), which the first reaction
    /// treats as just gone down.
    pub(crate) fn new(state: &State) -> Self {
        Self {
            seen: state
                .nodes()
                .filter(|node| {
                    node.status != NODE_STATUS_DOWN
                        || state.allocs_by_node(&node.id).all(|alloc| alloc.terminal())
                })
                .map(|node| (node.id.clone(), Seen::of(node)))
                .collect(),
            reacted: None,
        }
    }

    /// Records that the last reaction's write committed.
    pub(crate) fn committed(&mut self) {
        if let Some(reacted) = self.reacted.take() {
            self.seen = reacted;
        }
    }

    /// The evaluations a change to the nodes calls for, as one write
    /// (call [`Self::committed`] once it is written).
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
            let seen = Seen::of(node);
            let before = self.seen.get(&node.id);
            if before != Some(&seen) {
                unblock = true;
            }
            if before.map(|before| &before.usable) != Some(&seen.usable) {
                let went_down = seen.usable.0 == NODE_STATUS_DOWN;
                let now_usable = seen.usable.0 == NODE_STATUS_READY && seen.usable.1 == ELIGIBLE;
                if went_down {
                    evals.add_for_allocs(state, &node.id, node.modify_index);
                }
                if now_usable {
                    for job in state
                        .jobs_by_type(JOB_TYPE_SYSTEM)
                        .chain(state.jobs_by_type(JOB_TYPE_SYSBATCH))
                        .filter(|job| !job.stop)
                    {
                        evals.add(job, &node.id, node.modify_index);
                    }
                }
            }
            current.insert(node.id.clone(), seen);
        }
        // A removed (purged) node is a change as well: its allocations are
        // lost and replaced, as Nomad's node deregistration does.
        for removed in self.seen.keys().filter(|id| !current.contains_key(*id)) {
            unblock = true;
            evals.add_for_allocs(state, removed, 0);
        }
        self.reacted = Some(current);
        count(&stats.node_evals_coalesced, evals.coalesced);
        let mut evals = evals.evals;
        if unblock {
            for eval in unblocked(state, now) {
                evals.entry(eval.id.clone()).or_insert(eval);
            }
        }
        if evals.is_empty() {
            self.committed();
            return None;
        }
        Some(Command::EvalsUpsert {
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
    /// One evaluation for each job with a live allocation on the node.
    fn add_for_allocs(&mut self, state: &State, node_id: &str, node_modify_index: u64) {
        for alloc in state
            .allocs_by_node(node_id)
            .filter(|alloc| !alloc.terminal())
        {
            if let Some(job) = state.job(&alloc.namespace, &alloc.job_id) {
                self.add(job, node_id, node_modify_index);
            }
        }
    }

    fn add(&mut self, job: &Job, node_id: &str, node_modify_index: u64) {
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
        eval.node_id = node_id.to_string();
        eval.node_modify_index = node_modify_index;
        self.evals.insert(eval.id.clone(), eval);
    }
}
