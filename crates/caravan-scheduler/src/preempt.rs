//! Preemption (scheduling.md §5): which lower-priority allocations a node
//! must evict so that a placement fits, how such a node scores, and how
//! the evictions are written into the plan.
//!
//! This module is the pure part, over plain numbers; the placement stack
//! (`select::fitting`) finds the candidates on a node and re-checks the
//! result with the one fit check ([`crate::fit`]), so the plan applier,
//! which counts an eviction as freeing its room like any stop, agrees.

use std::sync::Arc;

use caravan_api_types::alloc::{Allocation, ALLOC_DESIRED_EVICT};
use caravan_api_types::job::{
    JOB_TYPE_BATCH, JOB_TYPE_SERVICE, JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM,
};
use caravan_api_types::operator::PreemptionConfig;

use crate::plan::Plan;

/// A victim's job priority must be at least this far below the placing
/// job's. It also rules out loops: an evicted job can never preempt its
/// preemptor back (the difference is negative for it).
pub const MIN_PRIORITY_DELTA: i64 = 10;
/// The distance added per preemption beyond a group's `max_parallel`,
/// so one plan spreads its evictions over groups when it can.
const MAX_PARALLEL_PENALTY: f64 = 50.0;
/// The net priority at which the preemption score is 0.5, and how steeply
/// it falls around it.
const SCORE_MIDPOINT: f64 = 2048.0;
const SCORE_SLOPE: f64 = 0.0048;

/// Whether the scheduler configuration lets `job_type` preempt.
pub fn enabled(config: &PreemptionConfig, job_type: &str) -> bool {
    match job_type {
        JOB_TYPE_SERVICE => config.service_scheduler_enabled,
        JOB_TYPE_BATCH => config.batch_scheduler_enabled,
        JOB_TYPE_SYSTEM => config.system_scheduler_enabled,
        JOB_TYPE_SYSBATCH => config.sys_batch_scheduler_enabled,
        _ => false,
    }
}

/// Whether a job of priority `placing` may evict one of `victim`.
pub fn may_preempt(placing: i64, victim: i64) -> bool {
    placing - victim >= MIN_PRIORITY_DELTA
}

/// Amounts per dimension: what a candidate holds, or what is still missing
/// on a node (≤ 0 in a dimension: nothing missing there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    pub cpu: i64,
    pub memory_mb: i64,
    pub disk_mb: i64,
    /// Allocation slots (`NodeMaxAllocs`): every victim frees one.
    pub allocs: i64,
}

impl Room {
    /// Nothing is missing any more.
    pub fn covered(&self) -> bool {
        self.cpu <= 0 && self.memory_mb <= 0 && self.disk_mb <= 0 && self.allocs <= 0
    }

    pub fn plus(self, other: Room) -> Room {
        Room {
            cpu: self.cpu + other.cpu,
            memory_mb: self.memory_mb + other.memory_mb,
            disk_mb: self.disk_mb + other.disk_mb,
            allocs: self.allocs + other.allocs,
        }
    }

    pub fn minus(self, other: Room) -> Room {
        Room {
            cpu: self.cpu - other.cpu,
            memory_mb: self.memory_mb - other.memory_mb,
            disk_mb: self.disk_mb - other.disk_mb,
            allocs: self.allocs - other.allocs,
        }
    }
}

/// An allocation that may be evicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its job's priority.
    pub priority: i64,
    pub room: Room,
    /// Its job and group, as an index into the caller's `preempted` counts.
    pub family: usize,
    /// Its group's `migrate.max_parallel` (0: no limit).
    pub max_parallel: i64,
}

/// How far `have` is from `need`: the root of the summed squares of
/// `(need − have) / need` over cpu, memory and disk, leaving out the
/// dimensions where nothing is needed.
pub fn distance(need: Room, have: Room) -> f64 {
    let term = |need: i64, have: i64| {
        if need <= 0 {
            0.0
        } else {
            let d = (need - have) as f64 / need as f64;
            d * d
        }
    };
    (term(need.memory_mb, have.memory_mb)
        + term(need.cpu, have.cpu)
        + term(need.disk_mb, have.disk_mb))
    .sqrt()
}

/// The extra distance of evicting one more of a group that already has
/// `preempted` evictions in the plan.
fn penalty(preempted: u32, max_parallel: i64) -> f64 {
    let preempted = i64::from(preempted);
    if max_parallel > 0 && preempted >= max_parallel {
        MAX_PARALLEL_PENALTY * (preempted + 1 - max_parallel) as f64
    } else {
        0.0
    }
}

/// Picks the candidates to evict so that `shortfall` (what the ask needs
/// beyond the node's free room) is covered, or `None` when all of them
/// together do not cover it. `preempted[family]` counts the evictions the
/// plan already holds per job and group.
///
/// Lowest priority first; within one priority, the candidate closest to
/// what is still missing (plus the `max_parallel` penalty) each time,
/// until nothing is missing. The picks are then trimmed: taken by their
/// distance to the whole shortfall, largest first, only until it is
/// covered, so an early small pick made redundant by a later large one is
/// left running.
pub fn choose(candidates: &[Candidate], shortfall: Room, preempted: &[u32]) -> Option<Vec<usize>> {
    if shortfall.covered() {
        return Some(Vec::new());
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Stable: equal priorities keep the caller's order, for determinism.
    order.sort_by_key(|&i| candidates[i].priority);
    let mut counts = preempted.to_vec();
    let count_of = |counts: &[u32], family: usize| counts.get(family).copied().unwrap_or(0);
    let mut missing = shortfall;
    let mut picked = Vec::new();
    let mut start = 0;
    while start < order.len() && !missing.covered() {
        let priority = candidates[order[start]].priority;
        let end = order[start..]
            .iter()
            .position(|&i| candidates[i].priority != priority)
            .map_or(order.len(), |offset| start + offset);
        let mut level: Vec<usize> = order[start..end].to_vec();
        while !level.is_empty() && !missing.covered() {
            let score = |i: usize| {
                let c = &candidates[i];
                distance(missing, c.room) + penalty(count_of(&counts, c.family), c.max_parallel)
            };
            let mut best = 0;
            let mut best_score = score(level[0]);
            for (at, &i) in level.iter().enumerate().skip(1) {
                let s = score(i);
                if s < best_score {
                    best = at;
                    best_score = s;
                }
            }
            let i = level.remove(best);
            let c = &candidates[i];
            missing = missing.minus(c.room);
            if counts.len() <= c.family {
                counts.resize(c.family + 1, 0);
            }
            counts[c.family] += 1;
            picked.push(i);
        }
        start = end;
    }
    if !missing.covered() {
        return None;
    }
    let mut by_distance: Vec<(f64, usize)> = picked
        .iter()
        .map(|&i| (distance(shortfall, candidates[i].room), i))
        .collect();
    by_distance.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut missing = shortfall;
    let mut kept = Vec::new();
    for (_, i) in by_distance {
        if missing.covered() {
            break;
        }
        missing = missing.minus(candidates[i].room);
        kept.push(i);
    }
    Some(kept)
}

/// The victims' net priority: the highest, plus the sum over the highest
/// (more victims, or victims closer to the top, weigh more).
pub fn net_priority(priorities: &[i64]) -> f64 {
    let max = priorities.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        return 0.0;
    }
    let sum: i64 = priorities.iter().sum();
    max as f64 + sum as f64 / max as f64
}

/// The `preemption` score: near 1 for victims of low net priority, 0.5 at
/// 2048, near 0 above.
pub fn score(net_priority: f64) -> f64 {
    1.0 / (1.0 + (SCORE_SLOPE * (net_priority - SCORE_MIDPOINT)).exp())
}

/// The `DesiredDescription` of an allocation evicted for `by`.
pub fn description(by: &str) -> String {
    format!("Preempted by alloc ID {by}")
}

/// Whether a plan's stop is an eviction for a preemption (the applier
/// drops those already terminal and writes their jobs' evaluations).
pub fn is_preemption(stop: &Allocation) -> bool {
    stop.desired_status == ALLOC_DESIRED_EVICT && !stop.preempted_by_allocation.is_empty()
}

/// Records that `placed` evicts `victims`: its `PreemptedAllocations`,
/// and each victim as a stop on its node with `DesiredStatus: evict`.
pub fn record(plan: &mut Plan, placed: &mut Allocation, victims: Vec<Arc<Allocation>>) {
    if victims.is_empty() {
        return;
    }
    placed.preempted_allocations = Some(victims.iter().map(|v| v.id.clone()).collect());
    for victim in victims {
        let mut evicted = Arc::unwrap_or_clone(victim);
        evicted.desired_status = ALLOC_DESIRED_EVICT.to_string();
        evicted.desired_description = description(&placed.id);
        evicted.preempted_by_allocation = placed.id.clone();
        plan.push_stop(evicted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(priority: i64, cpu: i64, memory_mb: i64, family: usize) -> Candidate {
        Candidate {
            priority,
            room: Room {
                cpu,
                memory_mb,
                disk_mb: 0,
                allocs: 1,
            },
            family,
            max_parallel: 0,
        }
    }

    fn need(cpu: i64, memory_mb: i64) -> Room {
        Room {
            cpu,
            memory_mb,
            ..Room::default()
        }
    }

    #[test]
    fn lowest_priority_goes_first() {
        let candidates = [
            cand(40, 500, 0, 0),
            cand(20, 500, 0, 1),
            cand(30, 500, 0, 2),
        ];
        assert_eq!(choose(&candidates, need(400, 0), &[]), Some(vec![1]));
        // Two are needed: the two lowest.
        let mut two = choose(&candidates, need(900, 0), &[]).expect("covered");
        two.sort();
        assert_eq!(two, [1, 2]);
    }

    #[test]
    fn the_closest_of_one_priority_is_taken() {
        let candidates = [
            cand(20, 2000, 0, 0),
            cand(20, 450, 0, 1),
            cand(20, 100, 0, 2),
        ];
        assert_eq!(choose(&candidates, need(400, 0), &[]), Some(vec![1]));
    }

    #[test]
    fn a_pick_made_redundant_by_a_later_one_is_dropped() {
        // 900 is closest to 1000 but not enough; 3000 then covers it alone.
        let candidates = [cand(20, 900, 0, 0), cand(20, 3000, 0, 1)];
        assert_eq!(choose(&candidates, need(1000, 0), &[]), Some(vec![1]));
    }

    #[test]
    fn not_enough_in_total_is_no_preemption() {
        let candidates = [cand(20, 300, 0, 0), cand(20, 300, 0, 1)];
        assert_eq!(choose(&candidates, need(700, 0), &[]), None);
        assert_eq!(choose(&[], need(1, 0), &[]), None);
        assert_eq!(choose(&candidates, need(0, -5), &[]), Some(vec![]));
    }

    #[test]
    fn a_group_past_max_parallel_is_avoided() {
        let mut a = cand(20, 500, 0, 0);
        a.max_parallel = 1;
        let b = cand(20, 520, 0, 1);
        // Without earlier evictions, `a` is closer.
        assert_eq!(
            choose(&[a.clone(), b.clone()], need(500, 0), &[]),
            Some(vec![0])
        );
        // Its group already lost one in this plan: `b` instead.
        assert_eq!(choose(&[a, b], need(500, 0), &[1, 0]), Some(vec![1]));
    }

    #[test]
    fn distance_and_score() {
        assert_eq!(distance(need(100, 0), need(100, 0)), 0.0);
        assert!((distance(need(100, 200), need(50, 100)) - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((score(2048.0) - 0.5).abs() < 1e-12);
        assert!(score(net_priority(&[20])) > score(net_priority(&[40])));
        assert_eq!(net_priority(&[20, 40]), 40.0 + 60.0 / 40.0);
        assert!(may_preempt(60, 50) && !may_preempt(59, 50) && !may_preempt(50, 60));
    }
}
