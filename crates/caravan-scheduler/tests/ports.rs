//! Ports and the fit check: static and dynamic ports never collide, the
//! shared fit function never overcommits, and the plan applier (the
//! harness's `apply`, which calls the same code) never rejects a node the
//! scheduler chose.

use std::collections::HashSet;

use caravan_api_types::alloc::{AllocatedResources, Allocation};
use caravan_api_types::node::NodeReservedResources;
use caravan_scheduler::fit::{fit, Capacity, Exhausted, NetworkError};
use caravan_scheduler::harness::{job, node, ports, MemoryState};
use caravan_scheduler::ports::{parse_port_list, NetworkIndex};
use caravan_scheduler::rng::SplitMix64;
use caravan_scheduler::SequentialIds;
use proptest::prelude::*;

fn all_ports(alloc: &Allocation) -> Vec<i32> {
    alloc
        .allocated_resources
        .iter()
        .flat_map(|r| r.shared.ports.iter().flatten())
        .map(|p| p.value)
        .collect()
}

#[test]
fn port_lists_parse_like_nomad() {
    assert_eq!(
        parse_port_list("22, 80,8000-8002"),
        vec![22, 80, 8000, 8001, 8002]
    );
    assert_eq!(
        parse_port_list("x,,99999,5"),
        vec![5],
        "bad entries are skipped"
    );
}

#[test]
fn static_port_collision_moves_to_another_node_then_exhausts() {
    let mut state = MemoryState::default();
    state.upsert_node(node("a", "dc1", 10_000, 10_000));
    state.upsert_node(node("b", "dc1", 10_000, 10_000));
    let mut web = job("web", "service", 3);
    web.task_groups[0].networks = Some(vec![ports(&[("http", 8080)], &[])]);
    let eval = state.upsert_job(web);
    let mut ids = SequentialIds::default();
    let result = state.run(&eval, 0, &mut ids);
    assert_eq!(result.plan.placements().count(), 2);
    assert_eq!(
        result.plan.node_allocation.len(),
        2,
        "one per node: 8080 is taken"
    );
    let failed = &result.failed_tg_allocs["group"];
    let dims = failed.dimension_exhausted.as_ref().unwrap();
    assert_eq!(
        dims["network: reserved port collision http=8080"], 2,
        "{dims:?}"
    );
}

#[test]
fn node_reserved_ports_are_never_given() {
    let mut n = node("a", "dc1", 10_000, 10_000);
    n.reserved_resources = Some(NodeReservedResources::default());
    n.reserved_resources
        .as_mut()
        .unwrap()
        .networks
        .reserved_host_ports = "20000-31999".into();
    let index = NetworkIndex::new(&n);
    let mut rng = SplitMix64::new(7);
    let offer = index
        .assign_ports(&n, &[ports(&[], &["a"])], &mut rng)
        .unwrap();
    assert_eq!(offer[0].value, 32000, "the only free dynamic port");
    let offer = index.assign_ports(&n, &[ports(&[], &["a", "b"])], &mut rng);
    assert_eq!(offer, Err(NetworkError::DynamicPortSelectionFailed));
    let offer = index.assign_ports(&n, &[ports(&[("ssh", 20001)], &[])], &mut rng);
    assert!(matches!(
        offer,
        Err(NetworkError::ReservedPortCollision { .. })
    ));
}

#[test]
fn fit_names_the_exhausted_dimension() {
    let n = node("a", "dc1", 1000, 1000);
    assert_eq!(Capacity::of(&n).cpu, 1000);
    let mut ask = AllocatedResources::default();
    ask.tasks.insert("t".into(), Default::default());
    ask.tasks.get_mut("t").unwrap().cpu.cpu_shares = 600;
    ask.tasks.get_mut("t").unwrap().memory.memory_mb = 600;
    let existing = Allocation {
        id: "x".into(),
        allocated_resources: Some(ask.clone()),
        client_status: "running".into(),
        ..Allocation::default()
    };
    assert_eq!(fit(&n, &[], &ask), Ok(()));
    assert_eq!(fit(&n, &[&existing], &ask), Err(Exhausted::Cpu));
    assert_eq!(Exhausted::Cpu.to_string(), "cpu");
    ask.tasks.get_mut("t").unwrap().cpu.cpu_shares = 100;
    assert_eq!(
        fit(&n, &[&existing], &ask).map_err(|e| e.to_string()),
        Err("memory".into())
    );
    ask.tasks.get_mut("t").unwrap().memory.memory_mb = 100;
    ask.shared.disk_mb = 1_000_000;
    assert_eq!(fit(&n, &[&existing], &ask), Err(Exhausted::Disk));
    // A finished allocation holds nothing.
    let done = Allocation {
        client_status: "complete".into(),
        ..existing.clone()
    };
    ask.shared.disk_mb = 0;
    assert_eq!(fit(&n, &[&done, &done], &ask), Ok(()));
}

#[test]
fn reserved_cores_are_exclusive() {
    let mut state = MemoryState::default();
    state.upsert_node(node("a", "dc1", 4000, 100_000));
    let mut pinned = job("pinned", "service", 3);
    pinned.task_groups[0].tasks[0].resources.cores = 2;
    let eval = state.upsert_job(pinned);
    let result = state.run(&eval, 0, &mut SequentialIds::default());
    assert_eq!(result.plan.placements().count(), 2, "4 cores, 2 each");
    let mut cores = HashSet::new();
    for alloc in result.plan.placements() {
        for task in alloc.allocated_resources.as_ref().unwrap().tasks.values() {
            assert_eq!(task.cpu.cpu_shares, 2000);
            for core in task.cpu.reserved_cores.iter().flatten() {
                assert!(cores.insert(*core));
            }
        }
    }
    assert_eq!(
        result.failed_tg_allocs["group"]
            .dimension_exhausted
            .as_ref()
            .unwrap()["cores"],
        1
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Many groups with static and dynamic ports on a few nodes with a
    /// narrow dynamic range: no two live allocations on a node share a
    /// port, nothing is overcommitted, and the applier accepts every node.
    #[test]
    fn ports_never_collide_and_fit_never_overcommits(
        nodes in 1usize..4,
        range in 3u16..40,
        groups in proptest::collection::vec((0usize..3, 0usize..4, 1i64..6, 100i64..1500), 1..8),
        seed in any::<u64>(),
    ) {
        let mut state = MemoryState::default();
        for i in 0..nodes {
            let mut n = node(&format!("n{i}"), "dc1", 4000, 8000);
            let resources = n.node_resources.as_mut().unwrap();
            resources.min_dynamic_port = 30000;
            resources.max_dynamic_port = 30000 + range;
            state.upsert_node(n);
        }
        let mut ids = SequentialIds::starting_at(seed % 1000);
        for (g, (statics, dynamics, count, memory)) in groups.iter().enumerate() {
            let mut j = job(&format!("j{g}"), "service", *count);
            let static_ports: Vec<(String, i32)> = (0..*statics)
                .map(|s| (format!("s{s}"), 8000 + ((g + s) % 4) as i32))
                .collect();
            let static_refs: Vec<(&str, i32)> = static_ports.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            let dynamic: Vec<String> = (0..*dynamics).map(|d| format!("d{d}")).collect();
            let dynamic_refs: Vec<&str> = dynamic.iter().map(String::as_str).collect();
            j.task_groups[0].networks = Some(vec![ports(&static_refs, &dynamic_refs)]);
            j.task_groups[0].tasks[0].resources.memory_mb = *memory;
            let eval = state.upsert_job(j);
            let result = state.schedule(&eval, 0, &mut ids);
            let rejected = state.apply(&result.plan);
            prop_assert!(rejected.is_empty(), "the applier rejected {:?}", rejected);
        }
        for n in state.nodes.values() {
            let live: Vec<_> = state.allocs.values().filter(|a| a.node_id == n.id && !a.terminal()).collect();
            let mut seen = HashSet::new();
            for alloc in &live {
                for port in all_ports(alloc) {
                    prop_assert!(seen.insert(port), "port {} twice on {}", port, n.id);
                    if port >= 30000 {
                        prop_assert!(port <= 30000 + i32::from(range));
                    }
                }
            }
            let memory: i64 = live.iter().map(|a| a.allocated_resources.as_ref().unwrap().totals().1).sum();
            let cpu: i64 = live.iter().map(|a| a.allocated_resources.as_ref().unwrap().totals().0).sum();
            prop_assert!(memory <= 8000 && cpu <= 4000);
        }
    }
}
