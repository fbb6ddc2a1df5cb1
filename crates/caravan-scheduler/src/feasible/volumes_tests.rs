//! Host volume placement through whole scheduler runs: the per-node check
//! against the class memo, the filter reason and the blocked eval.

use caravan_api_types::node::HostVolumeInfo;
use serde_json::json;

use super::volumes::REASON_MISSING_HOST_VOLUMES;
use super::REASON_CLASS_INELIGIBLE;
use crate::harness::{job, node, MemoryState};
use crate::SequentialIds;

/// Three nodes of one computed class (host volumes are not part of it);
/// `volumes` says which offer which volume, read-only or not.
fn cluster(volumes: &[(&str, &str, bool)]) -> MemoryState {
    let mut state = MemoryState::default();
    for id in ["n0", "n1", "n2"] {
        let mut n = node(id, "dc1", 4000, 8192);
        for (on, name, read_only) in volumes.iter().filter(|(on, ..)| *on == id) {
            let info = HostVolumeInfo {
                name: name.to_string(),
                path: format!("/srv/{on}/{name}"),
                read_only: *read_only,
                id: String::new(),
            };
            n.host_volumes.insert(name.to_string(), info);
        }
        state.upsert_node(n);
    }
    state
}

fn volume_job(
    id: &str,
    job_type: &str,
    count: i64,
    volume: serde_json::Value,
) -> caravan_api_types::job::Job {
    let mut job = job(id, job_type, count);
    job.task_groups[0].volumes = Some(json!({ "data": volume }));
    job
}

fn nodes_of(state: &MemoryState, job_id: &str) -> Vec<String> {
    let mut nodes: Vec<String> = state
        .live_allocs(job_id)
        .iter()
        .map(|a| a.node_id.clone())
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn places_only_on_nodes_offering_the_volume() {
    let mut state = cluster(&[("n1", "shared", false)]);
    let mut ids = SequentialIds::default();
    let web = volume_job(
        "web",
        "service",
        3,
        json!({"Type": "host", "Source": "shared"}),
    );
    let eval = state.upsert_job(web);
    let result = state.run(&eval, 0, &mut ids);
    assert!(result.failed_tg_allocs.is_empty(), "{result:?}");
    // Nodes of n1's class without the volume did not make the class
    // ineligible for n1.
    assert_eq!(nodes_of(&state, "web"), ["n1", "n1", "n1"]);
}

#[test]
fn a_missing_volume_blocks_with_nomads_reason() {
    let mut state = cluster(&[("n1", "other", false)]);
    let mut ids = SequentialIds::default();
    let web = volume_job(
        "web",
        "service",
        1,
        json!({"Type": "host", "Source": "shared"}),
    );
    let eval = state.upsert_job(web);
    let result = state.run(&eval, 0, &mut ids);
    let metric = &result.failed_tg_allocs["group"];
    let reasons = metric.constraint_filtered.clone().unwrap_or_default();
    assert_eq!(
        reasons.get(REASON_MISSING_HOST_VOLUMES),
        Some(&3),
        "{reasons:?}"
    );
    assert!(!reasons.contains_key(REASON_CLASS_INELIGIBLE));
    assert_eq!(metric.nodes_filtered, 3);
    let blocked = &result.blocked_evals[0];
    let failed = blocked.failed_tg_allocs.as_ref().map(|f| &f["group"]);
    let filtered = failed.and_then(|m| m.constraint_filtered.as_ref());
    assert_eq!(
        filtered.and_then(|f| f.get("missing compatible host volumes")),
        Some(&3)
    );
}

#[test]
fn a_read_only_volume_cannot_serve_a_writable_request() {
    let mut state = cluster(&[("n0", "shared", true), ("n2", "shared", false)]);
    let mut ids = SequentialIds::default();
    let writer = volume_job(
        "writer",
        "service",
        2,
        json!({"Type": "host", "Source": "shared", "ReadOnly": false}),
    );
    let eval = state.upsert_job(writer);
    assert!(state.run(&eval, 0, &mut ids).failed_tg_allocs.is_empty());
    assert_eq!(nodes_of(&state, "writer"), ["n2", "n2"]);

    // Read-only requests are served by either.
    let mut state = cluster(&[("n0", "shared", true)]);
    let reader = volume_job(
        "reader",
        "service",
        1,
        json!({"Type": "host", "Source": "shared", "ReadOnly": true}),
    );
    let eval = state.upsert_job(reader);
    assert!(state.run(&eval, 0, &mut ids).failed_tg_allocs.is_empty());
    assert_eq!(nodes_of(&state, "reader"), ["n0"]);

    // Only-read-only nodes: the writable request fails with the reason.
    let writer = volume_job(
        "writer",
        "service",
        1,
        json!({"Type": "host", "Source": "shared"}),
    );
    let eval = state.upsert_job(writer);
    let result = state.run(&eval, 0, &mut ids);
    let reasons = result.failed_tg_allocs["group"].constraint_filtered.clone();
    assert_eq!(
        reasons.unwrap_or_default().get(REASON_MISSING_HOST_VOLUMES),
        Some(&3)
    );
}

#[test]
fn system_jobs_run_where_the_volume_is() {
    let mut state = cluster(&[("n0", "shared", false), ("n2", "shared", false)]);
    let mut ids = SequentialIds::default();
    let agent = volume_job(
        "agent",
        "system",
        1,
        json!({"Type": "host", "Source": "shared"}),
    );
    let eval = state.upsert_job(agent);
    state.run(&eval, 0, &mut ids);
    assert_eq!(nodes_of(&state, "agent"), ["n0", "n2"]);
}

#[test]
fn csi_volumes_are_not_host_volume_asks() {
    let mut state = cluster(&[]);
    let mut ids = SequentialIds::default();
    let csi = volume_job(
        "csi",
        "service",
        1,
        json!({"Type": "csi", "Source": "disk"}),
    );
    let eval = state.upsert_job(csi);
    let result = state.run(&eval, 0, &mut ids);
    let reasons = result
        .failed_tg_allocs
        .get("group")
        .and_then(|m| m.constraint_filtered.clone())
        .unwrap_or_default();
    assert!(!reasons.contains_key(REASON_MISSING_HOST_VOLUMES));
}
