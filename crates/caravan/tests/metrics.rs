//! `/v1/metrics` against the real binary: Nomad's JSON and, when enabled,
//! Prometheus's text, with the leader's job summaries and the client's
//! allocations and host.

mod common;

use common::jobs::{
    marker, register, shell_job, wait_allocs, with_status, ProcessReaper, SERVER_AND_CLIENT,
};
use common::Agent;
use serde_json::{json, Value};

/// The gauge called `name` whose labels include `labels`.
fn gauge<'a>(metrics: &'a Value, name: &str, labels: &Value) -> Option<&'a Value> {
    metrics["Gauges"].as_array()?.iter().find(|gauge| {
        gauge["Name"] == name
            && labels.as_object().is_some_and(|wanted| {
                wanted
                    .iter()
                    .all(|(key, value)| gauge["Labels"][key] == *value)
            })
    })
}

#[test]
fn metrics_show_the_cluster_and_the_node_in_both_formats() {
    let marker = marker("metrics");
    let _reaper = ProcessReaper(marker.clone());
    let hcl = format!(
        "{SERVER_AND_CLIENT}telemetry {{\n  prometheus_metrics = true\n  publish_node_metrics = true\n}}\n"
    );
    let agent = Agent::start_with_data_dir(&[], &hcl);
    register(
        &agent,
        &shell_job("web", "service", 1, "sleep 600 & wait", &marker),
    );
    wait_allocs(&agent, "web", "the service running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let node_id = agent.get("/v1/nodes").json()[0]["ID"].clone();

    let reply = agent.get("/v1/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let metrics = reply.json();
    let summary = gauge(
        &metrics,
        "nomad.nomad.job_summary.running",
        &json!({"job": "web", "task_group": "g", "namespace": "default"}),
    );
    assert_eq!(
        summary.map(|gauge| gauge["Value"].clone()),
        Some(json!(1.0)),
        "{metrics}"
    );
    let running = gauge(
        &metrics,
        "nomad.client.allocations.running",
        &json!({"node_id": node_id}),
    );
    assert_eq!(
        running.map(|gauge| gauge["Value"].clone()),
        Some(json!(1.0)),
        "{metrics}"
    );
    let memory = gauge(&metrics, "nomad.client.host.memory.total", &json!({}));
    assert!(memory.is_some_and(|gauge| gauge["Value"].as_f64().unwrap() > 0.0));
    let processed = metrics["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|counter| counter["Name"] == "caravan.scheduler.evals_processed");
    assert!(processed.is_some_and(|counter| counter["Count"].as_u64().unwrap() >= 1));

    let text = agent.get("/v1/metrics?format=prometheus");
    assert_eq!(text.status, 200);
    assert!(
        text.header("Content-Type")
            .is_some_and(|value| value.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        text.header("Content-Type")
    );
    assert!(
        text.text.contains(
            "nomad_nomad_job_summary_running{job=\"web\",namespace=\"default\",task_group=\"g\"} 1\n"
        ),
        "{}",
        text.text
    );
    assert!(text
        .text
        .contains("# TYPE nomad_client_allocations_running gauge\n"));
    assert_eq!(agent.post("/v1/metrics", "").status, 405);
}

#[test]
fn prometheus_is_refused_unless_enabled_and_no_token_is_needed() {
    let agent = Agent::start_with_data_dir(
        &[],
        &format!("{SERVER_AND_CLIENT}acl {{\n  enabled = true\n}}\n"),
    );
    let refused = agent.get("/v1/metrics?format=prometheus");
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (415, "Prometheus is not enabled")
    );
    // Nomad's metrics need no token: scrapers send none.
    let metrics = agent.get("/v1/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    assert!(metrics.json()["Gauges"].is_array());
}
