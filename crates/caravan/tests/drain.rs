//! Node drains against a real server and real clients running raw_exec
//! tasks: service work moves `MaxParallel` at a time and the drain
//! completes only once the old allocations are terminal on their client;
//! batch work stays until the deadline; system work goes last or stays
//! with `IgnoreSystemJobs`; a drain that finds no room says so and
//! finishes when a node joins.

mod common;

use std::time::{Duration, Instant};

use common::cluster::eventually;
use common::jobs::{allocs, marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::Agent;
use serde_json::{json, Value};

const CLIENT_HCL: &str = "plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n";

fn server() -> Agent {
    Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "")
}

fn client(server: &Agent, name: &str) -> Agent {
    Agent::start_with_data_dir(
        &["-client", "-node", name, "-servers", &server.rpc_address()],
        CLIENT_HCL,
    )
}

/// The ID of the ready node called `name`.
fn node_id(server: &Agent, name: &str) -> String {
    let find = || {
        let nodes = server.get("/v1/nodes").json();
        nodes.as_array().and_then(|nodes| {
            nodes
                .iter()
                .find(|n| n["Name"] == name && n["Status"] == "ready")
                .map(|n| n["ID"].as_str().unwrap_or_default().to_string())
        })
    };
    eventually(&format!("node {name} ready"), || find().is_some());
    find().unwrap_or_default()
}

fn drain(server: &Agent, node: &str, deadline: i64, ignore_system: bool) {
    let body = json!({
        "DrainSpec": {"Deadline": deadline, "IgnoreSystemJobs": ignore_system},
        "Meta": {"reason": "test"}
    });
    let reply = server.put(&format!("/v1/node/{node}/drain"), &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn node(server: &Agent, id: &str) -> Value {
    server.get(&format!("/v1/node/{id}")).json()
}

fn drain_complete(server: &Agent, id: &str) -> bool {
    let node = node(server, id);
    node["DrainStrategy"].is_null() && node["LastDrain"]["Status"] == "complete"
}

fn terminal(alloc: &Value) -> bool {
    matches!(
        alloc["ClientStatus"].as_str(),
        Some("complete" | "failed" | "lost")
    )
}

fn migrate_job(id: &str, count: u32, marker: &str) -> Value {
    let mut job = shell_job(id, "service", count, "sleep 600 & wait", marker);
    job["TaskGroups"][0]["Migrate"] = json!({
        "MaxParallel": 1,
        "HealthCheck": "task_states",
        "MinHealthyTime": 1_000_000_000u64,
        "HealthyDeadline": 60_000_000_000u64
    });
    job
}

/// Waits until `check` holds, sampling every 50 ms for up to `limit`;
/// `sample` runs on every round (to assert what must hold throughout).
fn watch_until(limit: Duration, what: &str, mut sample: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !sample() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_service_drain_moves_one_at_a_time_and_completes_after_the_old_ones_stop() {
    let marker = marker("drain-svc");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let _a = client(&server, "client-a");
    let a = node_id(&server, "client-a");
    register(&server, &migrate_job("web", 4, &marker));
    wait_allocs(
        &server,
        "web",
        "four running and healthy on client-a",
        |allocs| {
            allocs
                .iter()
                .filter(|x| {
                    x["ClientStatus"] == "running" && x["DeploymentStatus"]["Healthy"] == true
                })
                .count()
                == 4
        },
    );
    let _b = client(&server, "client-b");
    let b = node_id(&server, "client-b");
    drain(&server, &a, 0, false);

    let mut most_away = 0;
    watch_until(Duration::from_secs(90), "the drain to complete", || {
        let node_done = drain_complete(&server, &a);
        let current = allocs(&server, "web");
        // Away from service: slots (allocation names) with no healthy,
        // running, unmarked allocation.
        let serving: std::collections::BTreeSet<&str> = current
            .iter()
            .filter(|alloc| {
                alloc["ClientStatus"] == "running"
                    && alloc["DesiredStatus"] == "run"
                    && alloc["DesiredTransition"]["Migrate"] != true
                    && alloc["DeploymentStatus"]["Healthy"] == true
            })
            .filter_map(|alloc| alloc["Name"].as_str())
            .collect();
        let away = 4 - serving.len();
        most_away = most_away.max(away);
        assert!(away <= 1, "{away} allocations away at once: {current:#?}");
        if node_done {
            // Complete means the old allocations are terminal on the client.
            let left: Vec<&Value> = current
                .iter()
                .filter(|alloc| alloc["NodeID"] == a.as_str() && !terminal(alloc))
                .collect();
            assert!(
                left.is_empty(),
                "drain complete with {left:#?} still on the node"
            );
        }
        node_done
    });
    assert_eq!(most_away, 1, "the drain moved something");
    let current = allocs(&server, "web");
    let running_on_b = current
        .iter()
        .filter(|alloc| alloc["NodeID"] == b.as_str() && alloc["ClientStatus"] == "running")
        .count();
    assert_eq!(running_on_b, 4);
    let moved = current
        .iter()
        .filter(|alloc| alloc["NodeID"] == a.as_str())
        .all(|alloc| alloc["DesiredDescription"] == "alloc is being migrated");
    assert!(moved, "{current:#?}");
    let drained = node(&server, &a);
    assert_eq!(drained["SchedulingEligibility"], "ineligible");
    assert_eq!(drained["LastDrain"]["Meta"]["reason"], "test");
    let events: Vec<String> = drained["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        events.last().map(String::as_str),
        Some("Node drain complete")
    );
}

#[test]
fn batch_work_stays_until_the_deadline_and_system_work_goes_last() {
    let marker = marker("drain-batch");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let _a = client(&server, "client-a");
    let a = node_id(&server, "client-a");
    register(
        &server,
        &shell_job("crunch", "batch", 1, "sleep 600 & wait", &marker),
    );
    register(
        &server,
        &shell_job("agent", "system", 1, "sleep 600 & wait", &marker),
    );
    wait_allocs(&server, "crunch", "the batch job running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    wait_allocs(&server, "agent", "the system job running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let _b = client(&server, "client-b");
    node_id(&server, "client-b");
    let started = Instant::now();
    drain(&server, &a, 6_000_000_000, false);
    // Before the deadline the batch work runs on, and the system work
    // waits for it.
    while started.elapsed() < Duration::from_secs(4) {
        let batch = allocs(&server, "crunch");
        assert_eq!(with_status(&batch, "running").len(), 1, "{batch:#?}");
        let system = allocs(&server, "agent");
        let on_a: Vec<&Value> = system
            .iter()
            .filter(|x| x["NodeID"] == a.as_str())
            .collect();
        assert!(
            on_a.iter().all(|x| x["DesiredStatus"] == "run"),
            "{system:#?}"
        );
        assert!(!drain_complete(&server, &a));
        std::thread::sleep(Duration::from_millis(200));
    }
    watch_until(Duration::from_secs(60), "the drain to complete", || {
        drain_complete(&server, &a)
    });
    let batch = allocs(&server, "crunch");
    assert_eq!(
        batch.len(),
        1,
        "drained batch work is not replaced: {batch:#?}"
    );
    assert!(terminal(&batch[0]));
    let system = allocs(&server, "agent");
    assert!(system
        .iter()
        .filter(|x| x["NodeID"] == a.as_str())
        .all(terminal));
    let drained = node(&server, &a);
    let last = drained["Events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["Message"], "Node drain complete");
    assert_eq!(last["Details"]["deadline_reached"], "true");
}

#[test]
fn a_forced_drain_ignoring_system_jobs_leaves_them_running() {
    let marker = marker("drain-force");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let _a = client(&server, "client-a");
    let a = node_id(&server, "client-a");
    register(
        &server,
        &shell_job("web", "service", 2, "sleep 600 & wait", &marker),
    );
    register(
        &server,
        &shell_job("agent", "system", 1, "sleep 600 & wait", &marker),
    );
    wait_allocs(&server, "web", "two running", |allocs| {
        with_status(allocs, "running").len() == 2
    });
    let _b = client(&server, "client-b");
    let b = node_id(&server, "client-b");
    wait_allocs(&server, "agent", "the system job on both nodes", |allocs| {
        with_status(allocs, "running").len() == 2
    });
    drain(&server, &a, -1, true);
    watch_until(Duration::from_secs(60), "the drain to complete", || {
        drain_complete(&server, &a)
    });
    let web = allocs(&server, "web");
    assert!(web
        .iter()
        .filter(|x| x["NodeID"] == a.as_str())
        .all(terminal));
    wait_allocs(&server, "web", "both replaced on client-b", |allocs| {
        allocs
            .iter()
            .filter(|x| x["NodeID"] == b.as_str() && x["ClientStatus"] == "running")
            .count()
            == 2
    });
    let system = allocs(&server, "agent");
    let on_a: Vec<&Value> = system
        .iter()
        .filter(|x| x["NodeID"] == a.as_str())
        .collect();
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a[0]["ClientStatus"], "running", "{system:#?}");
    assert_eq!(on_a[0]["DesiredStatus"], "run");
}

#[test]
fn a_drain_without_room_says_why_and_completes_when_a_node_joins() {
    let marker = marker("drain-room");
    let _reaper = ProcessReaper(marker.clone());
    let server = server();
    let _a = client(&server, "client-a");
    let a = node_id(&server, "client-a");
    register(&server, &migrate_job("web", 1, &marker));
    wait_allocs(&server, "web", "running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    drain(&server, &a, 0, false);
    let message = "Drain blocked: no node has room for job \"web\" group \"g\"";
    watch_until(Duration::from_secs(60), "the blocked event", || {
        node(&server, &a)["Events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["Message"] == message))
    });
    // Nothing was stopped for want of room.
    let current = allocs(&server, "web");
    assert_eq!(with_status(&current, "running").len(), 1, "{current:#?}");
    assert_eq!(current[0]["DesiredStatus"], "run");
    assert!(!drain_complete(&server, &a));
    // The job's blocked evaluation says what it waits for (a node change,
    // such as the event just written, may hand it out again for a moment
    // before it is reblocked in place).
    watch_until(
        Duration::from_secs(30),
        "a blocked eval naming the group",
        || {
            let evals = server.get("/v1/job/web/evaluations").json();
            evals.as_array().is_some_and(|evals| {
                evals
                    .iter()
                    .any(|e| e["Status"] == "blocked" && !e["FailedTGAllocs"]["g"].is_null())
            })
        },
    );

    let _b = client(&server, "client-b");
    let b = node_id(&server, "client-b");
    watch_until(Duration::from_secs(60), "the drain to complete", || {
        drain_complete(&server, &a)
    });
    wait_allocs(
        &server,
        "web",
        "the replacement running on client-b",
        |allocs| {
            allocs
                .iter()
                .any(|x| x["NodeID"] == b.as_str() && x["ClientStatus"] == "running")
        },
    );
}

#[test]
fn a_drain_survives_its_leader_being_killed() {
    let marker = marker("drain-failover");
    let _reaper = ProcessReaper(marker.clone());
    let mut cluster = common::cluster::Cluster::start(3, "");
    let servers: Vec<String> = cluster.servers.iter().map(Agent::rpc_address).collect();
    let servers = servers.join(",");
    let start_client = |name: &str| {
        Agent::start_with_data_dir(
            &["-client", "-node", name, "-servers", &servers],
            CLIENT_HCL,
        )
    };
    let leader = cluster.leader();
    let _a = start_client("client-a");
    let a = node_id(&cluster.servers[leader], "client-a");
    let mut job = migrate_job("web", 3, &marker);
    // Slow enough that the drain is still under way when the leader dies.
    job["TaskGroups"][0]["Migrate"]["MinHealthyTime"] = json!(3_000_000_000u64);
    register(&cluster.servers[leader], &job);
    wait_allocs(&cluster.servers[leader], "web", "three healthy", |allocs| {
        allocs
            .iter()
            .filter(|x| x["DeploymentStatus"]["Healthy"] == true)
            .count()
            == 3
    });
    let _b = start_client("client-b");
    let b = node_id(&cluster.servers[leader], "client-b");
    drain(&cluster.servers[leader], &a, 0, false);
    wait_allocs(
        &cluster.servers[leader],
        "web",
        "the first migration",
        |allocs| {
            allocs
                .iter()
                .any(|x| x["DesiredTransition"]["Migrate"] == true)
        },
    );
    cluster.servers[leader].kill9();
    let survivor = (leader + 1) % 3;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = cluster.servers[survivor].get(&format!("/v1/node/{a}?stale"));
        if reply.status == 200 && reply.json()["LastDrain"]["Status"] == "complete" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new leader did not finish the drain"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let current = allocs(&cluster.servers[survivor], "web");
    assert!(current
        .iter()
        .filter(|x| x["NodeID"] == a.as_str())
        .all(terminal));
    wait_allocs(
        &cluster.servers[survivor],
        "web",
        "all three on client-b",
        |allocs| {
            allocs
                .iter()
                .filter(|x| x["NodeID"] == b.as_str() && x["ClientStatus"] == "running")
                .count()
                == 3
        },
    );
}
