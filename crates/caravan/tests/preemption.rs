//! Preemption against a real server and clients: a system job evicts a
//! lower-priority service allocation from a full node, the victim's job
//! is told (a `preemption` evaluation) and placed again once room
//! appears; with system preemption off the system job waits instead.

mod common;

use common::cluster::eventually;
use common::jobs::{allocs, marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::Agent;
use serde_json::{json, Value};

/// A small client: 1,000 MHz and 1,024 MB, so two jobs do not fit.
fn sized_client(server: &Agent, name: &str, cpu: u64, memory: u64) -> Agent {
    let hcl = format!(
        "client {{\n  cpu_total_compute = {cpu}\n  memory_total_mb = {memory}\n}}\n\
         plugin \"raw_exec\" {{\n  config {{\n    enabled = true\n  }}\n}}\n"
    );
    Agent::start_with_data_dir(
        &["-client", "-node", name, "-servers", &server.rpc_address()],
        &hcl,
    )
}

fn ready_nodes(server: &Agent) -> usize {
    let nodes = server.get("/v1/nodes").json();
    nodes
        .as_array()
        .map(|nodes| nodes.iter().filter(|n| n["Status"] == "ready").count())
        .unwrap_or(0)
}

fn job(id: &str, job_type: &str, priority: u32, cpu: u32, memory: u32, marker: &str) -> Value {
    let mut job = shell_job(id, job_type, 1, "sleep 600 & wait", marker);
    job["Priority"] = json!(priority);
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": cpu, "MemoryMB": memory});
    job
}

fn server() -> Agent {
    Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "")
}

#[test]
fn a_system_job_evicts_a_low_priority_service_allocation_which_is_placed_again_later() {
    let marker = marker("preempt");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let _a = sized_client(&server, "client-a", 1000, 1024);
    eventually("client-a ready", || ready_nodes(&server) == 1);
    register(&server, &job("web", "service", 20, 700, 600, &marker));
    let running = wait_allocs(&server, "web", "the service running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let victim = running[0]["ID"].as_str().unwrap().to_string();

    register(&server, &job("agent", "system", 80, 500, 500, &marker));
    let agent = wait_allocs(&server, "agent", "the system job running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let agent_id = agent[0]["ID"].as_str().unwrap();
    let evicted = server.get(&format!("/v1/allocation/{victim}")).json();
    assert_eq!(evicted["DesiredStatus"], "evict");
    assert_eq!(evicted["PreemptedByAllocation"], agent_id);
    assert_eq!(
        evicted["DesiredDescription"],
        format!("Preempted by alloc ID {agent_id}")
    );
    let preemptor = server.get(&format!("/v1/allocation/{agent_id}")).json();
    assert_eq!(preemptor["PreemptedAllocations"], json!([victim]));
    wait_allocs(&server, "web", "the victim stopped", |allocs| {
        allocs
            .iter()
            .any(|a| a["ID"] == victim.as_str() && a["ClientStatus"] == "complete")
    });
    let evals = server.get("/v1/job/web/evaluations").json();
    let triggers: Vec<&str> = evals
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["TriggeredBy"].as_str())
        .collect();
    assert!(triggers.contains(&"preemption"), "{triggers:?}");
    // No room anywhere: the victim's job waits, blocked.
    eventually("the service job blocked", || {
        let evals = server.get("/v1/job/web/evaluations").json();
        evals
            .as_array()
            .is_some_and(|evals| evals.iter().any(|e| e["Status"] == "blocked"))
    });
    // A bigger node joins: the service runs again there.
    let _b = sized_client(&server, "client-b", 2000, 2048);
    let current = wait_allocs(&server, "web", "the service placed again", |allocs| {
        allocs
            .iter()
            .any(|a| a["NodeName"] == "client-b" && a["ClientStatus"] == "running")
    });
    assert_eq!(
        current
            .iter()
            .filter(|a| a["DesiredStatus"] == "run")
            .count(),
        1
    );
    let agents = allocs(&server, "agent");
    assert!(
        agents.iter().all(|a| a["DesiredStatus"] == "run"),
        "{agents:#?}"
    );
}

#[test]
fn with_system_preemption_off_the_system_job_waits() {
    let marker = marker("no-preempt");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let reply = server.put(
        "/v1/operator/scheduler/configuration",
        &json!({"PreemptionConfig": {"SystemSchedulerEnabled": false}}).to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let _a = sized_client(&server, "client-a", 1000, 1024);
    eventually("client-a ready", || ready_nodes(&server) == 1);
    register(&server, &job("web", "service", 20, 700, 600, &marker));
    wait_allocs(&server, "web", "the service running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    register(&server, &job("agent", "system", 80, 500, 500, &marker));
    eventually("the system job's placement reported failed", || {
        let evals = server.get("/v1/job/agent/evaluations").json();
        evals.as_array().is_some_and(|evals| {
            evals
                .iter()
                .any(|e| e["Status"] == "complete" && !e["FailedTGAllocs"]["g"].is_null())
        })
    });
    assert!(allocs(&server, "agent").is_empty());
    let web = allocs(&server, "web");
    assert_eq!(with_status(&web, "running").len(), 1);
    assert_eq!(web[0]["DesiredStatus"], "run");
}
