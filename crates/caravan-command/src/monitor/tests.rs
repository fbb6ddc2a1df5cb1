//! The evaluation monitor's lines, as Nomad words them.

use super::*;

fn alloc(id: &str, client: &str, create_index: u64) -> AllocState {
    AllocState {
        id: id.to_string(),
        group: "web".to_string(),
        node: "nodenodenode".to_string(),
        desired: "run".to_string(),
        client: client.to_string(),
        client_description: String::new(),
        create_index,
    }
}

#[test]
fn first_update_prints_job_alloc_and_status() {
    let mut new = EvalState::pending();
    new.status = "complete".into();
    new.job = "example".into();
    new.index = 10;
    let created = alloc("0123456789ab", "pending", 10);
    new.allocs.insert(created.id.clone(), created);
    let lines = changes(&EvalState::pending(), &new, false, "T");
    assert_eq!(
        lines,
        [
            "    T: Evaluation triggered by job \"example\"",
            "    T: Allocation \"01234567\" created: node \"nodenode\", group \"web\"",
            "    T: Evaluation status changed: \"pending\" -> \"complete\"",
        ]
    );
    assert!(changes(&new, &new, false, "T").is_empty());
}

#[test]
fn older_allocations_are_modified_and_status_changes_show() {
    let mut old = EvalState::pending();
    old.index = 10;
    let mut new = old.clone();
    new.allocs
        .insert("aaaaaaaaaa".into(), alloc("aaaaaaaaaa", "running", 3));
    let lines = changes(&old, &new, true, "T");
    assert_eq!(
        lines,
        ["    T: Allocation \"aaaaaaaaaa\" modified: node \"nodenodenode\", group \"web\""]
    );
    let mut later = new.clone();
    if let Some(alloc) = later.allocs.get_mut("aaaaaaaaaa") {
        alloc.client = "complete".into();
        alloc.client_description = "All tasks have completed".into();
    }
    assert_eq!(
        changes(&new, &later, false, "T"),
        ["    T: Allocation \"aaaaaaaa\" status changed: \"running\" -> \"complete\" (All tasks have completed)"]
    );
}

#[test]
fn placement_failures_are_listed() {
    let mut metrics = AllocMetric {
        nodes_evaluated: 1,
        nodes_filtered: 1,
        ..AllocMetric::default()
    };
    metrics.constraint_filtered = Some(BTreeMap::from([("missing drivers".to_string(), 1)]));
    metrics.dimension_exhausted = Some(BTreeMap::from([("memory".to_string(), 2)]));
    let eval = Evaluation {
        id: "eeeeeeeeeeee".into(),
        status: "complete".into(),
        blocked_eval: "bbbbbbbbbbbb".into(),
        failed_tg_allocs: Some(BTreeMap::from([("web".to_string(), metrics)])),
        ..Evaluation::default()
    };
    let lines = failure_lines(&eval, false, "T");
    assert_eq!(
        lines,
        [
            "==> T: Evaluation \"eeeeeeee\" finished with status \"complete\" but failed to place all allocations:",
            "    T: Task Group \"web\" (failed to place 1 allocation):",
            "      * Constraint \"missing drivers\": 1 nodes excluded by filter",
            "      * Dimension \"memory\" exhausted on 2 nodes",
            "    T: Evaluation \"bbbbbbbb\" waiting for additional capacity to place remainder",
        ]
    );
}

#[test]
fn no_eligible_nodes() {
    let text = format_alloc_metrics(&AllocMetric::default(), "");
    assert_eq!(text, "* No nodes were eligible for evaluation");
}
