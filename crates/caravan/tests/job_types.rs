//! Every job type really runs on a real agent's client, and ports are
//! handed out without collisions: each allocation's dynamic ports are its
//! own, its task sees them in `NOMAD_PORT_<label>`, and a static port
//! taken on the only node leaves the second allocation blocked with the
//! collision named.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::eventually;
use common::jobs::{
    marker, register, shell_job, wait_allocs, wait_no_processes, with_status, ProcessReaper,
    SERVER_AND_CLIENT,
};
use common::Agent;
use serde_json::{json, Value};

fn agent() -> Agent {
    Agent::start_with_data_dir(&[], SERVER_AND_CLIENT)
}

#[test]
fn system_and_sysbatch_jobs_run_on_the_node() {
    // Declared first, dropped last: after the agent.
    let marker = marker("types");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    register(
        &agent,
        &shell_job("sys", "system", 1, "sleep 600 & wait", &marker),
    );
    register(
        &agent,
        &shell_job("once", "sysbatch", 1, "echo ran", &marker),
    );
    let system = wait_allocs(&agent, "sys", "the system job running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let sysbatch = wait_allocs(&agent, "once", "the sysbatch job complete", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    let node = system[0]["NodeID"].as_str().unwrap();
    assert_eq!(sysbatch[0]["NodeID"], node);
    let job = agent.get("/v1/job/once").json();
    eventually("the sysbatch job dead", || {
        agent.get("/v1/job/once").json()["Status"] == "dead"
    });
    assert_eq!(job["Type"], "sysbatch");
    let logs = agent
        .data_dir()
        .join("alloc")
        .join(sysbatch[0]["ID"].as_str().unwrap())
        .join("alloc/logs/t.stdout.0");
    assert_eq!(std::fs::read_to_string(logs).unwrap(), "ran\n");

    let reply = agent.request("DELETE", "/v1/job/sys", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    wait_allocs(&agent, "sys", "the system job stopped", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    wait_no_processes(&marker);
}

/// The allocation's ports by label.
fn ports(alloc: &Value) -> Vec<(String, u64)> {
    alloc["AllocatedResources"]["Shared"]["Ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|port| {
                    (
                        port["Label"].as_str().unwrap().to_string(),
                        port["Value"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for_text(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.ends_with('\n') || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ports_never_collide_and_tasks_see_their_own() {
    let marker = marker("ports");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let script = "echo \"a=$NOMAD_PORT_a b=$NOMAD_PORT_b c=$NOMAD_PORT_c\"; sleep 600 & wait";
    let mut job = shell_job("dyn", "service", 6, script, &marker);
    job["TaskGroups"][0]["Networks"] = json!([{
        "DynamicPorts": [{"Label": "a"}, {"Label": "b"}, {"Label": "c"}]
    }]);
    register(&agent, &job);
    let allocs = wait_allocs(&agent, "dyn", "six running", |allocs| {
        with_status(allocs, "running").len() == 6
    });
    let mut seen = BTreeSet::new();
    for stub in &allocs {
        let id = stub["ID"].as_str().unwrap();
        let alloc = agent.get(&format!("/v1/allocation/{id}")).json();
        let ports = ports(&alloc);
        assert_eq!(ports.len(), 3, "{alloc}");
        for (_, port) in &ports {
            assert!(seen.insert(*port), "port {port} handed out twice");
        }
        let logs = agent
            .data_dir()
            .join("alloc")
            .join(id)
            .join("alloc/logs/t.stdout.0");
        let expected = ports
            .iter()
            .map(|(label, port)| format!("{label}={port}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(wait_for_text(&logs), format!("{expected}\n"));
    }
    assert_eq!(seen.len(), 18);

    // A static port: the node holds one such allocation, not two.
    let static_port = (29_000..30_000u64)
        .rev()
        .find(|port| !seen.contains(port))
        .unwrap();
    let mut fixed = shell_job("fixed", "service", 2, "sleep 600 & wait", &marker);
    fixed["TaskGroups"][0]["Networks"] = json!([{
        "ReservedPorts": [{"Label": "s", "Value": static_port}]
    }]);
    register(&agent, &fixed);
    wait_allocs(&agent, "fixed", "one running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    eventually("the second blocked on the port", || {
        let evals = agent.get("/v1/job/fixed/evaluations").json();
        evals.as_array().unwrap().iter().any(|eval| {
            eval["FailedTGAllocs"]["g"]["DimensionExhausted"]
                .as_object()
                .is_some_and(|dims| {
                    dims.keys().any(|key| {
                        key.contains(&format!("reserved port collision s={static_port}"))
                    })
                })
        })
    });
    let live = agent.get("/v1/job/fixed/allocations").json();
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
}
