//! Placement throughput of the pure scheduler, one core:
//! `cargo run --release -p caravan-scheduler --example bench`.
//!
//! For each scenario: one evaluation placing `count` allocations of a
//! service (or batch) job on `nodes` empty nodes; placements per second,
//! nodes scored per placement (those that passed feasibility and fit and
//! were ranked), and the binpack score of the chosen nodes.

use std::time::Instant;

use caravan_scheduler::harness::{job, node, MemoryState};
use caravan_scheduler::SequentialIds;

struct Scenario {
    name: &'static str,
    nodes: usize,
    count: i64,
    job_type: &'static str,
}

/// This thread's time on a CPU (ns), from `/proc/thread-self/schedstat`:
/// on a machine shared with other work, wall time overstates the cost.
fn cpu_time_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(scenario: &Scenario) {
    let mut state = MemoryState::default();
    for i in 0..scenario.nodes {
        // Two sizes, so the cluster has more than one computed class.
        let (cpu, memory) = if i % 2 == 0 {
            (8000, 16384)
        } else {
            (16000, 32768)
        };
        state.upsert_node(node(
            &format!("node-{i:05}"),
            &format!("dc{}", i % 3),
            cpu,
            memory,
        ));
    }
    let eval = state.upsert_job(job("bench", scenario.job_type, scenario.count));
    let mut ids = SequentialIds::default();
    let cpu_before = cpu_time_ns();
    let started = Instant::now();
    let result = state.schedule(&eval, 0, &mut ids);
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(cpu_time_ns())
        .map_or(elapsed.as_secs_f64(), |(before, after)| {
            (after - before) as f64 / 1e9
        });
    let placed: Vec<_> = result.plan.placements().collect();
    assert!(
        result.failed_tg_allocs.is_empty(),
        "{:?}",
        result.failed_tg_allocs.keys()
    );
    let mut scored = 0i64;
    let mut evaluated = 0i64;
    let mut chosen_binpack: Vec<f64> = Vec::with_capacity(placed.len());
    for alloc in &placed {
        let metrics = alloc.metrics.as_ref().expect("metrics");
        evaluated += metrics.nodes_evaluated;
        scored += metrics.nodes_evaluated - metrics.nodes_filtered - metrics.nodes_exhausted;
        if let Some(top) = metrics
            .score_meta_data
            .iter()
            .flatten()
            .find(|meta| meta.node_id == alloc.node_id)
        {
            chosen_binpack.push(top.scores.get("binpack").copied().unwrap_or(0.0));
        }
    }
    chosen_binpack.sort_by(f64::total_cmp);
    let n = placed.len() as f64;
    let used_nodes = result.plan.node_allocation.len();
    println!(
        "{:<24} {:>6} nodes {:>7} placed: wall {:>7.1} ms ({:>7.0}/s), CPU {:>7.1} ms ({:>7.0}/s); \
         nodes evaluated/placement {:>5.1}, scored/placement {:>5.1}; \
         chosen binpack p10/p50/p90 {:.3}/{:.3}/{:.3}; nodes used {}",
        scenario.name,
        scenario.nodes,
        placed.len(),
        elapsed.as_secs_f64() * 1e3,
        n / elapsed.as_secs_f64(),
        cpu * 1e3,
        n / cpu,
        evaluated as f64 / n,
        scored as f64 / n,
        percentile(&chosen_binpack, 0.1),
        percentile(&chosen_binpack, 0.5),
        percentile(&chosen_binpack, 0.9),
        used_nodes,
    );
}

fn main() {
    let scenarios = [
        Scenario {
            name: "service, count 10,000",
            nodes: 5_000,
            count: 10_000,
            job_type: "service",
        },
        Scenario {
            name: "service, count 100,000",
            nodes: 10_000,
            count: 100_000,
            job_type: "service",
        },
        Scenario {
            name: "batch, count 100,000",
            nodes: 10_000,
            count: 100_000,
            job_type: "batch",
        },
    ];
    // An argument picks the scenarios whose name contains it.
    let only = std::env::args().nth(1).unwrap_or_default();
    for scenario in scenarios.iter().filter(|s| s.name.contains(&only)) {
        run(scenario);
    }
}
