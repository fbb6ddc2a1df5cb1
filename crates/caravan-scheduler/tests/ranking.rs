//! Ranking: binpack vs spread, anti-affinity, affinities, spread blocks,
//! and what an unplaceable group reports.

use std::collections::BTreeMap;

use caravan_api_types::job::{Affinity, Constraint, Spread, SpreadTarget};
use caravan_api_types::operator::SCHEDULER_ALGORITHM_SPREAD;
use caravan_scheduler::harness::{job, node, MemoryState};
use caravan_scheduler::rank::Algorithm;
use caravan_scheduler::SequentialIds;

/// Two nodes, one already half full with another job's allocation.
fn half_full() -> MemoryState {
    let mut state = MemoryState::default();
    state.upsert_node(node("full", "dc1", 4000, 8192));
    state.upsert_node(node("empty", "dc1", 4000, 8192));
    let mut filler = job("filler", "service", 1);
    filler.task_groups[0].tasks[0].resources.cpu = 2000;
    filler.task_groups[0].tasks[0].resources.memory_mb = 4096;
    filler.constraints = Some(vec![Constraint::new("${node.unique.id}", "=", "full")]);
    let eval = state.upsert_job(filler);
    state.run(&eval, 0, &mut SequentialIds::starting_at(1000));
    assert_eq!(state.live_allocs("filler")[0].node_id, "full");
    state
}

#[test]
fn fit_scores_follow_nomads_formulas() {
    assert!(
        Algorithm::BinPack.fit(1.0, 1.0) == 0.0,
        "an empty node scores 0"
    );
    assert!(
        Algorithm::BinPack.fit(0.0, 0.0) == 18.0,
        "a full node scores 18"
    );
    assert!(Algorithm::Spread.fit(1.0, 1.0) == 18.0);
    assert!(Algorithm::Spread.fit(0.0, 0.0) == 0.0);
    let half = Algorithm::BinPack.fit(0.5, 0.5);
    assert!((half - (20.0 - 2.0 * 10f64.sqrt())).abs() < 1e-9);
}

#[test]
fn binpack_prefers_the_fuller_node() {
    let mut state = half_full();
    let eval = state.upsert_job(job("web", "service", 1));
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    let placed = result.plan.placements().next().unwrap();
    assert_eq!(placed.node_id, "full");
    let top = placed
        .metrics
        .as_ref()
        .unwrap()
        .score_meta_data
        .clone()
        .unwrap();
    assert_eq!(top[0].node_id, "full");
    assert!(top[0].norm_score > top[1].norm_score);
    assert!(top[0].scores.contains_key("binpack"));
}

#[test]
fn spread_algorithm_prefers_the_emptier_node() {
    let mut state = half_full();
    state.config.scheduler_algorithm = SCHEDULER_ALGORITHM_SPREAD.into();
    let eval = state.upsert_job(job("web", "service", 1));
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert_eq!(result.plan.placements().next().unwrap().node_id, "empty");
}

#[test]
fn job_anti_affinity_spreads_a_group_over_equal_nodes() {
    let mut state = MemoryState::default();
    for id in ["a", "b", "c"] {
        state.upsert_node(node(id, "dc1", 100_000, 100_000));
    }
    let eval = state.upsert_job(job("web", "service", 3));
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for alloc in result.plan.placements() {
        *per_node.entry(alloc.node_id.as_str()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
}

#[test]
fn affinity_pulls_toward_matching_nodes() {
    let mut state = MemoryState::default();
    for (id, class) in [("a", "cpu"), ("b", "gpu"), ("c", "cpu"), ("d", "cpu")] {
        let mut n = node(id, "dc1", 100_000, 100_000);
        n.node_class = class.into();
        state.upsert_node(n);
    }
    let mut web = job("web", "service", 1);
    web.affinities = Some(vec![Affinity {
        l_target: "${node.class}".into(),
        operand: "=".into(),
        r_target: "gpu".into(),
        weight: 100,
    }]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    let placed = result.plan.placements().next().unwrap();
    assert_eq!(placed.node_id, "b");
    let top = placed
        .metrics
        .as_ref()
        .unwrap()
        .score_meta_data
        .clone()
        .unwrap();
    assert_eq!(top[0].scores["node-affinity"], 1.0);
}

#[test]
fn spread_targets_split_by_percent() {
    let mut state = MemoryState::default();
    for i in 0..4 {
        state.upsert_node(node(&format!("east{i}"), "east", 100_000, 100_000));
        state.upsert_node(node(&format!("west{i}"), "west", 100_000, 100_000));
    }
    let mut web = job("web", "service", 10);
    web.task_groups[0].spreads = Some(vec![Spread {
        attribute: "${node.datacenter}".into(),
        weight: 100,
        spread_target: Some(vec![
            SpreadTarget {
                value: "east".into(),
                percent: 70,
            },
            SpreadTarget {
                value: "west".into(),
                percent: 30,
            },
        ]),
    }]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    let east = result
        .plan
        .placements()
        .filter(|a| a.node_id.starts_with("east"))
        .count();
    assert_eq!(result.plan.placements().count(), 10);
    assert_eq!(east, 7);
}

#[test]
fn unsatisfiable_constraint_fails_the_group_and_blocks_the_eval() {
    let mut state = MemoryState::default();
    for i in 0..5 {
        state.upsert_node(node(&format!("n{i}"), "dc1", 4000, 8192));
    }
    let mut web = job("web", "service", 3);
    web.constraints = Some(vec![Constraint::new("${attr.kernel.name}", "=", "windows")]);
    let eval = state.upsert_job(web);
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    assert!(result.plan.is_no_op());
    let failed = &result.failed_tg_allocs["group"];
    assert_eq!(failed.nodes_evaluated, 5);
    assert_eq!(failed.nodes_filtered, 5);
    assert_eq!(failed.nodes_in_pool, 5);
    assert_eq!(failed.nodes_available.as_ref().unwrap()["dc1"], 5);
    let reasons = failed.constraint_filtered.as_ref().unwrap();
    assert_eq!(reasons["${attr.kernel.name} = windows"], 1, "{reasons:?}");
    assert_eq!(reasons["computed class ineligible"], 4);
    assert_eq!(failed.coalesced_failures, 2);
    assert_eq!(result.queued_allocations["group"], 3);
    assert_eq!(result.blocked_evals.len(), 1);
    let blocked = &result.blocked_evals[0];
    assert_eq!(blocked.status, "blocked");
    assert_eq!(blocked.triggered_by, "queued-allocs");
    assert_eq!(
        blocked.status_description,
        "created to place remaining allocations"
    );
    let classes = blocked.class_eligibility.as_ref().unwrap();
    assert_eq!(classes.values().collect::<Vec<_>>(), [&false]);
    assert_eq!(result.eval.blocked_eval, blocked.id);
    assert_eq!(result.eval.status, "complete");
    assert!(result.eval.failed_tg_allocs.is_some());

    // Out of memory instead: exhausted, with the dimension.
    let mut state = MemoryState::default();
    state.upsert_node(node("n0", "dc1", 4000, 100));
    let eval = state.upsert_job(job("big", "service", 1));
    let result = state.schedule(&eval, 0, &mut SequentialIds::default());
    let failed = &result.failed_tg_allocs["group"];
    assert_eq!(failed.nodes_exhausted, 1);
    assert_eq!(failed.dimension_exhausted.as_ref().unwrap()["memory"], 1);
}

#[test]
fn plans_are_deterministic() {
    let build = || {
        let mut state = MemoryState::default();
        for i in 0..50 {
            state.upsert_node(node(&format!("n{i}"), "dc1", 4000, 8192));
        }
        let eval = state.upsert_job(job("web", "service", 40));
        state.schedule(&eval, 0, &mut SequentialIds::default())
    };
    assert_eq!(build().plan, build().plan);
}

#[test]
fn memory_max_is_given_only_with_oversubscription() {
    let mut state = MemoryState::default();
    state.upsert_node(node("a", "dc1", 4000, 8192));
    let mut web = job("web", "service", 1);
    web.task_groups[0].tasks[0].resources.memory_max_mb = 1024;
    let eval = state.upsert_job(web);
    let max_given = |state: &MemoryState| {
        let result = state.schedule(&eval, 0, &mut SequentialIds::default());
        let alloc = result.plan.placements().next().unwrap().clone();
        alloc.allocated_resources.unwrap().tasks["task"]
            .memory
            .memory_max_mb
    };
    assert_eq!(max_given(&state), 0);
    state.config.memory_oversubscription_enabled = true;
    assert_eq!(max_given(&state), 1024);
}
