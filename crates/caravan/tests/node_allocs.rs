//! Clients receive their allocations and report them back: simulated nodes
//! (`caravan node-sim -run-allocs`) take what the scheduler placed through
//! the node allocation RPCs, and what they report is what the HTTP API
//! shows; the RPCs answer only the node's own secret, about its own
//! allocations.

mod common;

use std::process::{Child, Command, Stdio};

use common::cluster::eventually;
use common::{Agent, BINARY};
use serde_json::{json, Value};

/// `caravan node-sim` running in the background, killed when dropped.
struct NodeSim(Child);

impl NodeSim {
    fn start(server: &Agent, count: usize) -> Self {
        let rpc = server.rpc_address();
        let child = Command::new(BINARY)
            .args([
                "node-sim",
                "-servers",
                &rpc,
                "-count",
                &count.to_string(),
                "-duration",
                "180s",
                "-run-allocs",
                "-batch-runtime",
                "2s",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start node-sim");
        let sim = NodeSim(child);
        eventually("the simulated nodes to be ready", || {
            let nodes = server.get("/v1/nodes").json();
            nodes.as_array().is_some_and(|nodes| {
                nodes
                    .iter()
                    .filter(|node| node["Status"] == "ready")
                    .count()
                    == count
            })
        });
        sim
    }
}

impl Drop for NodeSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn job(id: &str, job_type: &str, count: u64) -> String {
    json!({"Job": {"ID": id, "Type": job_type, "TaskGroups": [{
        "Name": "work", "Count": count,
        "Tasks": [{"Name": "main", "Driver": "raw_exec",
                   "Config": {"command": "/bin/sleep", "args": ["600"]}}]}]}})
    .to_string()
}

fn register(server: &Agent, id: &str, job_type: &str, count: u64) {
    let reply = server.post("/v1/jobs", &job(id, job_type, count));
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn allocations(server: &Agent, job: &str) -> Vec<Value> {
    let reply = server.get(&format!("/v1/job/{job}/allocations"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().cloned().unwrap_or_default()
}

/// Waits until `job` has `count` allocations, all with `client_status`.
fn wait_for_allocs(server: &Agent, job: &str, count: usize, client_status: &str) -> Vec<Value> {
    eventually(
        &format!("{count} {client_status} allocations of {job}"),
        || {
            let allocs = allocations(server, job);
            allocs.len() == count
                && allocs
                    .iter()
                    .all(|alloc| alloc["ClientStatus"] == client_status)
        },
    );
    allocations(server, job)
}

fn event_types(task_state: &Value) -> Vec<String> {
    task_state["Events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["Type"].as_str().map(str::to_string))
        .collect()
}

fn rpc_post(server: &Agent, path: &str, body: &Value) -> Value {
    reqwest::blocking::Client::new()
        .post(format!("http://{}{path}", server.rpc_address()))
        .json(body)
        .send()
        .expect("rpc request")
        .json()
        .expect("rpc reply")
}

/// Registers a node with no drivers (nothing is placed on it) and `secret`.
fn register_bare_node(server: &Agent, id: &str, secret: &str) {
    let node = json!({
        "ID": id, "SecretID": secret, "Name": format!("bare-{}", &id[..4]),
        "Datacenter": "dc1", "HTTPAddr": "127.0.0.9:4646",
    });
    let reply = rpc_post(server, "/rpc/node/register", &node);
    assert!(reply.get("Ok").is_some(), "{reply}");
}

#[test]
fn simulated_nodes_run_service_allocations_and_finish_batch_ones() {
    let server = Agent::server();
    let _sim = NodeSim::start(&server, 3);

    register(&server, "web", "service", 3);
    let running = wait_for_allocs(&server, "web", 3, "running");
    for alloc in &running {
        let task = &alloc["TaskStates"]["main"];
        assert_eq!(task["State"], "running", "{alloc}");
        assert!(task["StartedAt"].is_string(), "{alloc}");
        assert_eq!(
            event_types(task),
            ["Received", "Task Setup", "Started"],
            "{alloc}"
        );
        assert_eq!(alloc["DesiredStatus"], "run");
    }
    let summary = server.get("/v1/job/web/summary").json();
    assert_eq!(summary["Summary"]["work"]["Running"], 3, "{summary}");
    assert_eq!(server.get("/v1/job/web").json()["Status"], "running");

    register(&server, "report", "batch", 2);
    let finished = wait_for_allocs(&server, "report", 2, "complete");
    for alloc in &finished {
        let task = &alloc["TaskStates"]["main"];
        assert_eq!(task["State"], "dead", "{alloc}");
        assert_eq!(task["Failed"], false, "{alloc}");
        assert!(task["FinishedAt"].is_string(), "{alloc}");
        assert_eq!(
            event_types(task).last().map(String::as_str),
            Some("Terminated"),
            "{alloc}"
        );
    }
    eventually("the batch job to be dead", || {
        server.get("/v1/job/report").json()["Status"] == "dead"
    });
    // Finished batch work is not replaced.
    assert_eq!(allocations(&server, "report").len(), 2);

    // Stopping the service job: the nodes report its allocations complete.
    let stopped = server.request("DELETE", "/v1/job/web", None);
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    wait_for_allocs(&server, "web", 3, "complete");
    eventually("the stopped job to be dead", || {
        server.get("/v1/job/web").json()["Status"] == "dead"
    });
}

#[test]
fn node_alloc_rpcs_answer_only_the_nodes_own_secret_about_its_own_allocations() {
    let server = Agent::server();
    let _sim = NodeSim::start(&server, 1);
    let bare = "bbbb0000-0000-4000-8000-000000000001";
    let other = "bbbb0000-0000-4000-8000-000000000002";
    register_bare_node(&server, bare, "bare-secret");
    register_bare_node(&server, other, "other-secret");
    register(&server, "web", "service", 1);
    let placed = wait_for_allocs(&server, "web", 1, "running");
    let alloc_id = placed[0]["ID"].as_str().unwrap().to_string();
    assert_ne!(placed[0]["NodeID"], bare);

    let query =
        |secret: &str| json!({"node_id": bare, "secret_id": secret, "min_index": 0, "wait_ms": 0});
    let update = |secret: &str, status: &str| {
        json!({"node_id": bare, "secret_id": secret, "allocs": [{
            "id": alloc_id, "client_status": status,
            "client_description": "", "task_states": {}}]})
    };
    // Another node's secret opens neither route.
    let refused = rpc_post(&server, "/rpc/node/allocs", &query("other-secret"));
    assert_eq!(refused["Err"], "SecretMismatch", "{refused}");
    let refused = rpc_post(
        &server,
        "/rpc/node/allocs/update",
        &update("other-secret", "failed"),
    );
    assert_eq!(refused["Err"], "SecretMismatch", "{refused}");

    // Its own secret reads its own (empty) allocations...
    let own = rpc_post(&server, "/rpc/node/allocs", &query("bare-secret"));
    assert_eq!(own["Ok"]["allocs"], json!({}), "{own}");
    assert!(own["Ok"]["index"].as_u64().unwrap() >= 1, "{own}");
    // ...but may not report on an allocation another node runs.
    let foreign = rpc_post(
        &server,
        "/rpc/node/allocs/update",
        &update("bare-secret", "failed"),
    );
    let text = foreign["Err"]["Invalid"].as_str().unwrap_or_default();
    assert!(text.contains("not on node"), "{foreign}");
    // A status that is not a client status is refused too.
    let bad = rpc_post(
        &server,
        "/rpc/node/allocs/update",
        &update("bare-secret", "exploded"),
    );
    assert!(bad["Err"]["Invalid"].is_string(), "{bad}");

    let after = server.get(&format!("/v1/allocation/{alloc_id}")).json();
    assert_eq!(after["ClientStatus"], "running", "{after}");
}

/// A node the test speaks for, with `secret`: a simulated node's
/// registration under `id`, so it fits what the simulated node fits.
/// Returns what keeps it alive (a heartbeat).
fn register_reporter<'a>(server: &'a Agent, id: &'a str, secret: &'a str) -> impl Fn() + 'a {
    let sim_id = server.get("/v1/nodes").json()[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let mut node = server.get(&format!("/v1/node/{sim_id}")).json();
    node["ID"] = json!(id);
    node["Name"] = json!("reporter");
    node["SecretID"] = json!(secret);
    node["Status"] = json!("ready");
    let registered = rpc_post(server, "/rpc/node/register", &node);
    assert!(registered.get("Ok").is_some(), "{registered}");
    move || {
        let beat = json!({"node_id": id, "secret_id": secret, "status": "ready"});
        let reply = rpc_post(server, "/rpc/node/heartbeat", &beat);
        assert!(reply.get("Ok").is_some(), "{reply}");
    }
}

/// A job of `group` pinned to node `id`.
fn pinned_job(job: &str, job_type: &str, id: &str, group: Value) -> Value {
    let mut group = group;
    group["Name"] = json!("work");
    group["Count"] = json!(1);
    group["Constraints"] = json!([{"LTarget": "${node.unique.id}", "RTarget": id, "Operand": "="}]);
    group["Tasks"] = json!([{"Name": "main", "Driver": "raw_exec",
                             "Config": {"command": "/bin/false"}}]);
    json!({"Job": {"ID": job, "Type": job_type, "TaskGroups": [group]}})
}

#[test]
fn a_garbage_collected_allocation_wakes_its_nodes_query_with_a_newer_index() {
    let server = Agent::server();
    let _sim = NodeSim::start(&server, 1);
    let id = "dddd0000-0000-4000-8000-000000000001";
    let keep_alive = register_reporter(&server, id, "gc-secret");
    let spec = pinned_job("once", "batch", id, json!({}));
    let reply = server.post("/v1/jobs", &spec.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the allocation on the reporting node", || {
        keep_alive();
        allocations(&server, "once").len() == 1
    });
    let alloc = allocations(&server, "once")[0].clone();
    let done = json!({"node_id": id, "secret_id": "gc-secret", "allocs": [{
        "id": alloc["ID"], "client_status": "complete",
        "client_description": "", "task_states": {}}]});
    let reported = rpc_post(&server, "/rpc/node/allocs/update", &done);
    assert!(reported["Ok"].as_u64().is_some(), "{reported}");
    eventually("the job's evaluations to be complete", || {
        let evals = server.get("/v1/job/once/evaluations").json();
        evals.as_array().is_some_and(|evals| {
            !evals.is_empty() && evals.iter().all(|eval| eval["Status"] == "complete")
        })
    });
    let query = |min_index: u64, wait_ms: u64| {
        json!({"node_id": id, "secret_id": "gc-secret",
               "min_index": min_index, "wait_ms": wait_ms})
    };
    let seen = rpc_post(&server, "/rpc/node/allocs", &query(0, 0));
    let seen_index = seen["Ok"]["index"].as_u64().unwrap();
    assert!(
        seen["Ok"]["allocs"]
            .get(alloc["ID"].as_str().unwrap())
            .is_some(),
        "{seen}"
    );

    // The client waits on its allocations while they are collected.
    let waiting = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = std::time::Instant::now();
            let reply = rpc_post(&server, "/rpc/node/allocs", &query(seen_index, 30_000));
            (reply, started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        let evals = server.get("/v1/job/once/evaluations").json();
        let ids: Vec<&Value> = evals
            .as_array()
            .unwrap()
            .iter()
            .map(|eval| &eval["ID"])
            .collect();
        let body = json!({"EvalIDs": ids}).to_string();
        let deleted = server.request("DELETE", "/v1/evaluations", Some(&body));
        assert_eq!(deleted.status, 200, "{}", deleted.text);
        waiting.join().unwrap()
    });
    let (reply, waited) = waiting;
    assert!(waited < std::time::Duration::from_secs(20), "{waited:?}");
    let index = reply["Ok"]["index"].as_u64().unwrap();
    assert!(index > seen_index, "{reply} after {seen_index}");
    assert_eq!(reply["Ok"]["allocs"], json!({}), "{reply}");
    assert!(allocations(&server, "once").is_empty());
}

#[test]
fn a_failure_a_node_reports_is_rescheduled_per_the_policy() {
    let server = Agent::server();
    let _sim = NodeSim::start(&server, 1);
    let id = "cccc0000-0000-4000-8000-000000000001";
    let keep_alive = register_reporter(&server, id, "reporter-secret");

    let policy = json!({"ReschedulePolicy": {
        "Unlimited": true, "Delay": 5_000_000_000u64,
        "DelayFunction": "constant", "MaxDelay": 3_600_000_000_000u64}});
    let spec = pinned_job("flaky", "service", id, policy);
    let reply = server.post("/v1/jobs", &spec.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the allocation on the reporting node", || {
        keep_alive();
        allocations(&server, "flaky").len() == 1
    });
    let first = allocations(&server, "flaky")[0].clone();
    assert_eq!(first["NodeID"], id);
    let failed = json!({"node_id": id, "secret_id": "reporter-secret", "allocs": [{
        "id": first["ID"], "client_status": "failed",
        "client_description": "Failed tasks", "task_states": {}}]});
    let reported = rpc_post(&server, "/rpc/node/allocs/update", &failed);
    assert!(reported["Ok"].as_u64().is_some(), "{reported}");

    eventually("a replacement for the failed allocation", || {
        keep_alive();
        allocations(&server, "flaky").len() == 2
    });
    let evals = server.get("/v1/job/flaky/evaluations").json();
    assert!(
        evals
            .as_array()
            .unwrap()
            .iter()
            .any(|eval| eval["TriggeredBy"] == "alloc-failure"),
        "{evals}"
    );
    let allocs = allocations(&server, "flaky");
    let replacement = allocs
        .iter()
        .find(|alloc| alloc["ID"] != first["ID"])
        .unwrap();
    let full = server
        .get(&format!(
            "/v1/allocation/{}",
            replacement["ID"].as_str().unwrap()
        ))
        .json();
    assert_eq!(full["PreviousAllocation"], first["ID"], "{full}");
    assert_eq!(full["ClientStatus"], "pending", "{full}");
    let old = server
        .get(&format!("/v1/allocation/{}", first["ID"].as_str().unwrap()))
        .json();
    assert_eq!(old["ClientStatus"], "failed", "{old}");
    assert_eq!(old["NextAllocation"], replacement["ID"], "{old}");
}
