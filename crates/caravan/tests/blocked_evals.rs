//! Blocked evaluations against a real agent: a job that does not fit
//! waits blocked, and is placed as soon as room appears, whether a node
//! changes or another job's allocations stop.

mod common;

use std::process::{Child, Command, Stdio};

use common::cluster::eventually;
use common::jobs::{
    marker, register, shell_job, wait_allocs, with_status, ProcessReaper, SERVER_AND_CLIENT,
};
use common::{Agent, BINARY};
use serde_json::{json, Value};

/// A long-running job asking for `memory_mb`.
fn big_job(id: &str, memory_mb: u64, marker: &str) -> Value {
    let mut job = shell_job(id, "service", 1, "sleep 600 & wait", marker);
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 100, "MemoryMB": memory_mb});
    job
}

fn evals(agent: &Agent, job_id: &str) -> Vec<Value> {
    let reply = agent.get(&format!("/v1/job/{job_id}/evaluations"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().cloned().unwrap_or_default()
}

#[test]
fn room_freed_by_a_stopped_job_places_the_blocked_one() {
    // Declared first, dropped last: after the agent.
    let marker = marker("room");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    register(&agent, &shell_job("probe", "batch", 1, "true", &marker));
    let probe = wait_allocs(&agent, "probe", "the probe placed", |allocs| {
        !allocs.is_empty()
    });
    let node_id = probe[0]["NodeID"].as_str().unwrap().to_string();
    let node = agent.get(&format!("/v1/node/{node_id}")).json();
    let memory = node["NodeResources"]["Memory"]["MemoryMB"]
        .as_u64()
        .unwrap();
    let reserved = node["ReservedResources"]["Memory"]["MemoryMB"]
        .as_u64()
        .unwrap_or(0);
    // Two of these never fit on the node together.
    let size = (memory - reserved) * 6 / 10;

    register(&agent, &big_job("first", size, &marker));
    wait_allocs(&agent, "first", "first running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    register(&agent, &big_job("second", size, &marker));
    eventually("second blocked for memory", || {
        let evals = evals(&agent, "second");
        let failed = evals.iter().any(|eval| {
            eval["Status"] == "complete"
                && eval["FailedTGAllocs"]["g"]["DimensionExhausted"]["memory"] == 1
        });
        failed && evals.iter().any(|eval| eval["Status"] == "blocked")
    });
    let summary = agent.get("/v1/job/second/summary").json();
    assert_eq!(summary["Summary"]["g"]["Queued"], 1, "{summary}");

    // No node changes: only the stop frees the room.
    let reply = agent.request("DELETE", "/v1/job/first", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    wait_allocs(&agent, "second", "second running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let evals = evals(&agent, "second");
    assert!(
        evals
            .iter()
            .all(|eval| eval["Status"] != "blocked" && eval["Status"] != "pending"),
        "{evals:?}"
    );
    assert_eq!(
        agent.get("/v1/job/second/summary").json()["Summary"]["g"]["Queued"],
        0
    );
}

/// `caravan node-sim` nodes of one datacenter, killed when dropped.
struct NodeSim(Child);

impl NodeSim {
    fn start(server: &Agent, datacenter: &str) -> Self {
        let child = Command::new(BINARY)
            .args(["node-sim", "-servers", &server.rpc_address(), "-count", "1"])
            .args([
                "-duration",
                "120s",
                "-run-allocs",
                "-datacenter",
                datacenter,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start node-sim");
        NodeSim(child)
    }
}

impl Drop for NodeSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ready_nodes(server: &Agent) -> usize {
    let nodes = server.get("/v1/nodes").json();
    nodes.as_array().map_or(0, |nodes| {
        nodes
            .iter()
            .filter(|node| node["Status"] == "ready")
            .count()
    })
}

#[test]
fn an_unsatisfiable_constraint_is_reported_then_placed_when_a_matching_node_joins() {
    let server = Agent::server();
    let _dc1 = NodeSim::start(&server, "dc1");
    eventually("the dc1 node ready", || ready_nodes(&server) == 1);
    let job = json!({"Job": {
        "ID": "edge",
        "Constraints": [{"LTarget": "${node.datacenter}", "Operand": "=", "RTarget": "dc2"}],
        "TaskGroups": [{"Name": "g", "Tasks": [{
            "Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/sleep", "args": ["600"]}
        }]}]
    }});
    let reply = server.put("/v1/jobs", &job.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the placement reported failed", || {
        evals(&server, "edge").iter().any(|eval| {
            eval["Status"] == "complete"
                && eval["FailedTGAllocs"]["g"]["ConstraintFiltered"]["${node.datacenter} = dc2"]
                    == 1
        })
    });
    assert!(evals(&server, "edge")
        .iter()
        .any(|eval| eval["Status"] == "blocked"));
    let allocs = server.get("/v1/job/edge/allocations").json();
    assert_eq!(allocs, json!([]));

    let _dc2 = NodeSim::start(&server, "dc2");
    eventually("placed and running on the dc2 node", || {
        let allocs = server.get("/v1/job/edge/allocations").json();
        allocs
            .as_array()
            .is_some_and(|allocs| allocs.len() == 1 && allocs[0]["ClientStatus"] == "running")
    });
    let allocs = server.get("/v1/job/edge/allocations").json();
    let node = server
        .get(&format!(
            "/v1/node/{}",
            allocs[0]["NodeID"].as_str().unwrap()
        ))
        .json();
    assert_eq!(node["Datacenter"], "dc2");
    assert!(evals(&server, "edge")
        .iter()
        .all(|eval| eval["Status"] != "blocked" && eval["Status"] != "pending"));
}
