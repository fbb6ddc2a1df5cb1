//! Ranking: how good a feasible node is for one placement (Nomad's
//! `scheduler/feasible/rank.go`). Every scorer appends a value; the final
//! score is their plain mean, as Nomad's `ScoreNormalizationIterator`.

pub mod spread;

use caravan_api_types::job::{Affinity, Job, TaskGroup};
use caravan_api_types::node::Node;
use caravan_api_types::operator::SCHEDULER_ALGORITHM_SPREAD;

use crate::feasible::constraint::{node_satisfies, RegexCache};

pub const SCORER_BINPACK: &str = "binpack";
pub const SCORER_ANTI_AFFINITY: &str = "job-anti-affinity";
pub const SCORER_RESCHEDULE_PENALTY: &str = "node-reschedule-penalty";
pub const SCORER_AFFINITY: &str = "node-affinity";
pub const SCORER_SPREAD: &str = "allocation-spread";
pub const SCORER_PREEMPTION: &str = "preemption";

/// The best fit score (`binPackingMaxFitScore`).
pub const MAX_FIT: f64 = 18.0;

/// Which fit function the scheduler configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    BinPack,
    Spread,
}

impl Algorithm {
    pub fn from_config(name: &str) -> Self {
        if name == SCHEDULER_ALGORITHM_SPREAD {
            Self::Spread
        } else {
            Self::BinPack
        }
    }

    /// `ScoreFitBinPack` / `ScoreFitSpread` over the fractions of CPU and
    /// memory left free once the placement is counted, in `[0, 18]`.
    pub fn fit(self, free_cpu: f64, free_memory: f64) -> f64 {
        let total = 10f64.powf(free_cpu) + 10f64.powf(free_memory);
        let score = match self {
            Self::BinPack => 20.0 - total,
            Self::Spread => total - 2.0,
        };
        score.clamp(0.0, MAX_FIT)
    }
}

/// `−(collisions + 1) / count`, when the node already holds allocations of
/// the same job and group.
pub fn anti_affinity(collisions: u32, count: i64) -> Option<f64> {
    (collisions > 0).then(|| -(f64::from(collisions) + 1.0) / count.max(1) as f64)
}

/// The job's, group's and tasks' affinities together.
pub fn affinities<'a>(job: &'a Job, group: &'a TaskGroup) -> Vec<&'a Affinity> {
    job.affinities
        .iter()
        .flatten()
        .chain(group.affinities.iter().flatten())
        .chain(
            group
                .tasks
                .iter()
                .flat_map(|t| t.affinities.iter().flatten()),
        )
        .collect()
}

/// Σ weights of matching affinities ÷ Σ |weights|.
pub fn affinity_score(affinities: &[&Affinity], node: &Node, regexes: &mut RegexCache) -> f64 {
    let total: f64 = affinities.iter().map(|a| f64::from(a.weight).abs()).sum();
    if total == 0.0 {
        return 0.0;
    }
    let matched: f64 = affinities
        .iter()
        .filter(|a| node_satisfies(&a.l_target, &a.operand, &a.r_target, node, regexes))
        .map(|a| f64::from(a.weight))
        .sum();
    matched / total
}
