//! Client nodes against real server and client processes: registration
//! with fingerprinted fields, heartbeats and down-detection, restarts,
//! purge, eligibility, drain, blocking, prefix, filter and pagination.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::{json, Value};

/// A server with short heartbeat timings so down-detection is quick.
fn quick_server() -> Agent {
    Agent::start_with_data_dir(
        &["-server", "-bootstrap-expect", "1"],
        "server {\n  min_heartbeat_ttl = \"1s\"\n  heartbeat_grace = \"1s\"\n}\n",
    )
}

fn client_of(server: &Agent, extra_hcl: &str) -> Agent {
    let servers = server.rpc_address();
    Agent::start_with_data_dir(
        &["-client", "-servers", &servers, "-node", "worker-1"],
        extra_hcl,
    )
}

fn nodes(agent: &Agent) -> Vec<Value> {
    let reply = agent.get("/v1/nodes");
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().unwrap().clone()
}

/// Polls until `check` holds for the node, returning it.
fn wait_for_node(agent: &Agent, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = agent.get(&format!("/v1/node/{id}"));
        if reply.status == 200 && check(&reply.json()) {
            return reply.json();
        }
        assert!(
            Instant::now() < deadline,
            "node never {what}: {}",
            reply.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn only_node_id(agent: &Agent) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = nodes(agent);
        if let Some(node) = list.first() {
            return node["ID"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no node registered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn messages(node: &Value) -> Vec<String> {
    node["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["Message"].as_str().unwrap().to_string())
        .collect()
}

/// Registers a fake node straight through the RPC a client uses.
fn register_fake(server: &Agent, id: &str, name: &str, class: &str) {
    let node = json!({
        "ID": id, "SecretID": uuid_like(id), "Name": name, "Datacenter": "dc1",
        "NodeClass": class, "HTTPAddr": "127.0.0.9:4646",
        "Attributes": {"os.name": "debian", "nomad.version": "1.10.0"},
        "Meta": {"rack": class},
    });
    let client = reqwest::blocking::Client::new();
    let reply: Value = client
        .post(format!("http://{}/rpc/node/register", server.rpc_address()))
        .json(&node)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(reply.get("Ok").is_some(), "{reply}");
}

fn uuid_like(seed: &str) -> String {
    format!("{}-secret", seed)
}

#[test]
fn a_dev_agent_registers_its_fingerprinted_node() {
    let agent = Agent::start(
        &["-dev", "-node", "fp-node", "-node-class", "compute"],
        "client {\n  meta {\n    rack = \"r7\"\n  }\n  reserved {\n    cpu = 250\n    memory = 128\n    disk = 1024\n  }\n  host_volume \"certs\" {\n    path = \"/etc/ssl/certs\"\n    read_only = true\n  }\n}\n",
    );
    let id = only_node_id(&agent);
    let node = wait_for_node(&agent, &id, "ready", |n| n["Status"] == "ready");
    assert_eq!(node["Name"], "fp-node");
    assert_eq!(node["NodeClass"], "compute");
    assert_eq!(node["SecretID"], "");
    assert_eq!(node["HTTPAddr"], format!("127.0.0.1:{}", agent.http_port));
    assert_eq!(node["SchedulingEligibility"], "eligible");
    assert_eq!(node["Drain"], false);
    assert!(node["ComputedClass"].as_str().unwrap().starts_with("v1:"));
    let attributes = &node["Attributes"];
    for key in [
        "cpu.arch",
        "cpu.numcores",
        "cpu.frequency",
        "cpu.modelname",
        "cpu.totalcompute",
        "memory.totalbytes",
        "kernel.name",
        "kernel.version",
        "os.name",
        "os.version",
        "unique.hostname",
        "unique.network.ip-address",
        "unique.storage.volume",
        "unique.storage.bytestotal",
        "unique.storage.bytesfree",
        "nomad.version",
        "nomad.revision",
        "nomad.advertise.address",
        "driver.raw_exec",
    ] {
        assert!(attributes.get(key).is_some(), "missing attribute {key}");
    }
    assert_eq!(attributes["kernel.name"], "linux");
    assert_eq!(attributes["unique.network.ip-address"], "127.0.0.1");
    let cores: u64 = attributes["cpu.numcores"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cores >= 1);
    for driver in ["raw_exec", "exec", "docker"] {
        let info = &node["Drivers"][driver];
        for key in [
            "Attributes",
            "Detected",
            "Healthy",
            "HealthDescription",
            "UpdateTime",
        ] {
            assert!(info.get(key).is_some(), "driver {driver} lacks {key}");
        }
    }
    assert_eq!(node["Drivers"]["raw_exec"]["Healthy"], true);
    let resources = &node["NodeResources"];
    assert!(resources["Cpu"]["CpuShares"].as_u64().unwrap() > 0);
    assert!(resources["Memory"]["MemoryMB"].as_u64().unwrap() > 0);
    assert!(resources["Disk"]["DiskMB"].as_u64().unwrap() > 0);
    assert_eq!(resources["Networks"][0]["IP"], "127.0.0.1");
    assert_eq!(resources["Networks"][0]["Device"], "lo");
    assert_eq!(node["ReservedResources"]["Cpu"]["CpuShares"], 250);
    assert_eq!(node["ReservedResources"]["Memory"]["MemoryMB"], 128);
    assert_eq!(node["Reserved"]["DiskMB"], 1024);
    assert_eq!(node["Meta"]["rack"], "r7");
    assert_eq!(
        node["HostVolumes"]["certs"],
        json!({"Name": "certs", "Path": "/etc/ssl/certs", "ReadOnly": true, "ID": ""})
    );
    let first = &node["Events"][0];
    assert_eq!(first["Message"], "Node registered");
    assert_eq!(first["Subsystem"], "Cluster");
    assert!(first["CreateIndex"].as_u64().unwrap() > 0);
    assert!(first["Timestamp"].is_string());
    assert!(node["StatusUpdatedAt"].as_i64().unwrap() > 1_700_000_000);

    let stub = &nodes(&agent)[0];
    let mut keys: Vec<&str> = stub
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "Address",
            "CreateIndex",
            "Datacenter",
            "Drain",
            "Drivers",
            "HostVolumes",
            "ID",
            "LastDrain",
            "ModifyIndex",
            "Name",
            "NodeClass",
            "NodePool",
            "SchedulingEligibility",
            "Status",
            "StatusDescription",
            "Version"
        ]
    );
    assert_eq!(stub["Address"], "127.0.0.1");
    assert_eq!(stub["Version"], attributes["nomad.version"]);
    let with_resources = agent.get("/v1/nodes?resources=true&os=true").json();
    assert!(with_resources[0]["NodeResources"].is_object());
    assert_eq!(
        with_resources[0]["Attributes"],
        json!({"os.name": attributes["os.name"]})
    );
    let bad = agent.get("/v1/nodes?os=maybe");
    assert_eq!(bad.status, 400);
    assert!(
        bad.text.starts_with("Failed to parse node list fields"),
        "{}",
        bad.text
    );

    let self_stats = agent.get("/v1/agent/self").json()["stats"]["client"].clone();
    assert_eq!(self_stats["node_id"], id);
}

#[test]
fn a_killed_client_goes_down_and_comes_back_as_the_same_node() {
    let server = quick_server();
    let mut client = client_of(&server, "");
    let id = only_node_id(&server);
    wait_for_node(&server, &id, "ready", |n| n["Status"] == "ready");
    assert_eq!(
        client.get("/v1/agent/servers").json(),
        json!([server.rpc_address()])
    );

    client.kill9();
    let down = wait_for_node(&server, &id, "down", |n| n["Status"] == "down");
    assert!(messages(&down).contains(&"Node heartbeat missed".to_string()));
    let missed = down["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Message"] == "Node heartbeat missed")
        .unwrap();
    assert_eq!(missed["Subsystem"], "Cluster");
    assert!(down["LastMissedHeartbeatIndex"].as_u64().unwrap() > 0);

    client.restart();
    let back = wait_for_node(&server, &id, "ready again", |n| n["Status"] == "ready");
    assert_eq!(back["ID"], id);
    assert_eq!(back["LastMissedHeartbeatIndex"], 0);
    assert!(
        messages(&back).contains(&"Node reregistered by heartbeat".to_string())
            || messages(&back).contains(&"Node re-registered".to_string())
    );
    assert_eq!(nodes(&server).len(), 1);
}

#[test]
fn purge_removes_the_node_and_a_live_client_registers_again() {
    let server = quick_server();
    let _client = client_of(&server, "");
    let id = only_node_id(&server);
    wait_for_node(&server, &id, "ready", |n| n["Status"] == "ready");
    let created = server.get(&format!("/v1/node/{id}")).json()["CreateIndex"].clone();

    let reply = server.post(&format!("/v1/node/{id}/purge"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    for key in [
        "EvalIDs",
        "EvalCreateIndex",
        "NodeModifyIndex",
        "Index",
        "HeartbeatTTL",
        "LeaderRPCAddr",
        "NumNodes",
        "Servers",
        "KnownLeader",
        "LastContact",
    ] {
        assert!(body.get(key).is_some(), "purge answer lacks {key}");
    }
    assert!(body["Index"].as_u64().unwrap() > 0);
    assert_eq!(body["EvalIDs"], Value::Null);

    // The client's next heartbeat finds its node gone and registers anew.
    let again = wait_for_node(&server, &id, "registered again", |n| {
        n["CreateIndex"] != created && n["Status"] == "ready"
    });
    assert_eq!(messages(&again)[0], "Node registered");
    assert_eq!(server.post(&format!("/v1/node/{id}/purge"), "").status, 200);
}

#[test]
fn eligibility_changes_record_events_and_refuse_bad_values() {
    let agent = Agent::dev();
    let id = only_node_id(&agent);
    let path = format!("/v1/node/{id}/eligibility");
    let reply = agent.post(&path, r#"{"Eligibility": "ineligible"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert!(body["Index"].as_u64().unwrap() > 0);
    assert_eq!(body["NodeModifyIndex"], body["Index"]);
    assert_eq!(body["EvalIDs"], Value::Null);
    let node = agent.get(&format!("/v1/node/{id}")).json();
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    assert_eq!(
        messages(&node).last().unwrap(),
        "Node marked as ineligible for scheduling"
    );

    // The same value again changes nothing and says so with zero indexes.
    let same = agent.post(&path, r#"{"Eligibility": "ineligible"}"#).json();
    assert_eq!(
        same,
        json!({"NodeModifyIndex": 0, "EvalIDs": null, "EvalCreateIndex": 0, "Index": 0})
    );

    agent.put(&path, r#"{"Eligibility": "eligible"}"#);
    let node = agent.get(&format!("/v1/node/{id}")).json();
    assert_eq!(node["SchedulingEligibility"], "eligible");
    assert_eq!(
        messages(&node).last().unwrap(),
        "Node marked as eligible for scheduling"
    );

    let bad = agent.post(&path, r#"{"Eligibility": "maybe"}"#);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.text, "invalid scheduling eligibility \"maybe\"");
    assert_eq!(agent.post(&path, "not json").status, 400);
}

#[test]
fn a_drain_with_nothing_to_move_completes_at_once_and_leaves_the_node_ineligible() {
    let agent = Agent::dev();
    let id = only_node_id(&agent);
    let body = json!({"DrainSpec": {"Deadline": 3_600_000_000_000i64, "IgnoreSystemJobs": true}, "Meta": {"reason": "kernel upgrade"}});
    let reply = agent.post(&format!("/v1/node/{id}/drain"), &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    let answer = reply.json();
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["EvalCreateIndex", "EvalIDs", "Index", "NodeModifyIndex"]
    );
    assert_eq!(
        reply.header("x-nomad-index").unwrap(),
        answer["Index"].to_string()
    );

    let node = wait_for_node(&agent, &id, "done draining", |n| {
        n["DrainStrategy"].is_null()
    });
    assert_eq!(node["Drain"], false);
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    let events = messages(&node);
    assert!(
        events.contains(&"Node drain strategy set".to_string()),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap(), "Node drain complete");
    let last_drain = &node["LastDrain"];
    assert_eq!(last_drain["Status"], "complete");
    assert_eq!(last_drain["AccessorID"], "token:acls-disabled");
    assert_eq!(last_drain["Meta"], json!({"reason": "kernel upgrade"}));
    assert!(last_drain["StartedAt"].is_string());
    let drain_events: Vec<&Value> = node["Events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Subsystem"] == "Drain")
        .collect();
    assert_eq!(drain_events.len(), 2);

    // Draining is over; marking eligible is an explicit step.
    let reply = agent.post(
        &format!("/v1/node/{id}/drain"),
        &json!({"DrainSpec": null, "MarkEligible": true}).to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let node = agent.get(&format!("/v1/node/{id}")).json();
    assert_eq!(node["SchedulingEligibility"], "eligible");

    let empty = agent.post(&format!("/v1/node/{id}/drain"), "");
    assert_eq!(empty.status, 400);
    assert_eq!(empty.text, "Request body is empty");
    let wrong_type = agent.post(
        &format!("/v1/node/{id}/drain"),
        r#"{"DrainSpec": {"Deadline": "1h"}}"#,
    );
    assert_eq!(wrong_type.status, 400);
}

#[test]
fn unknown_and_malformed_node_ids() {
    let agent = Agent::dev();
    let missing = "00000000-0000-0000-0000-000000000000";
    let reply = agent.get(&format!("/v1/node/{missing}"));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text, "node not found");
    assert!(reply.header("x-nomad-index").is_some());
    for path in ["eligibility", "drain", "purge", "evaluate"] {
        let reply = agent.post(
            &format!("/v1/node/{missing}/{path}"),
            r#"{"Eligibility": "eligible", "DrainSpec": null}"#,
        );
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.text, "node not found");
    }
    let malformed = agent.get("/v1/node/not-a-uuid");
    assert_eq!(malformed.status, 400);
    assert!(malformed.text.contains("not-a-uuid"));
    assert_eq!(
        agent.get(&format!("/v1/node/{missing}/allocations")).json(),
        json!([])
    );
    let id = only_node_id(&agent);
    let allocations = agent.get(&format!("/v1/node/{id}/allocations"));
    assert_eq!(allocations.json(), json!([]));
    assert_eq!(allocations.header("x-nomad-index").unwrap(), "1");
    let evaluate = agent.post(&format!("/v1/node/{id}/evaluate"), "").json();
    assert_eq!(evaluate["EvalIDs"], Value::Null);
    assert_eq!(
        evaluate["Servers"][0]["RPCAdvertiseAddr"],
        agent.rpc_address()
    );
    assert_eq!(evaluate["LeaderRPCAddr"], agent.rpc_address());
}

#[test]
fn an_eligibility_change_wakes_a_blocking_node_list() {
    let agent = Arc::new(Agent::dev());
    let id = only_node_id(&agent);
    wait_for_node(&agent, &id, "ready", |n| n["Status"] == "ready");
    let index = agent.get("/v1/nodes").header("x-nomad-index").unwrap();
    let waiter = {
        let agent = Arc::clone(&agent);
        let index = index.clone();
        std::thread::spawn(move || agent.get(&format!("/v1/nodes?index={index}&wait=60s")))
    };
    agent.wait_for_blocking_waiters(1);
    assert!(
        !waiter.is_finished(),
        "the query returned before any change"
    );
    let write = agent.post(
        &format!("/v1/node/{id}/eligibility"),
        r#"{"Eligibility": "ineligible"}"#,
    );
    let written = write.json()["Index"].as_u64().unwrap();
    let woken = waiter.join().unwrap();
    assert_eq!(woken.header("x-nomad-index").unwrap(), written.to_string());
    assert_eq!(woken.json()[0]["SchedulingEligibility"], "ineligible");
}

#[test]
fn a_change_to_one_node_wakes_only_the_queries_on_that_node() {
    let server = Arc::new(Agent::server());
    let ids: Vec<String> = (0..20)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        register_fake(&server, id, &format!("fake-{i}"), "batch");
    }
    let indexes: Vec<String> = ids
        .iter()
        .map(|id| {
            let reply = server.get(&format!("/v1/node/{id}"));
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.header("x-nomad-index").unwrap()
        })
        .collect();
    let waiters: Vec<_> = ids
        .iter()
        .zip(&indexes)
        .enumerate()
        .map(|(i, (id, index))| {
            let server = Arc::clone(&server);
            // The changed node's query could wait long; the others run out.
            let wait = if i == 7 { "60s" } else { "3s" };
            let path = format!("/v1/node/{id}?index={index}&wait={wait}");
            std::thread::spawn(move || server.get(&path))
        })
        .collect();
    server.wait_for_blocking_waiters(ids.len() as u64);
    let woken_before = server.state_stat("woken_waiters");
    let write = server.post(
        &format!("/v1/node/{}/eligibility", ids[7]),
        r#"{"Eligibility": "ineligible"}"#,
    );
    let written = write.json()["Index"].as_u64().unwrap();
    // The write answered after its watches fired: exactly one woke.
    assert_eq!(server.state_stat("woken_waiters") - woken_before, 1);
    for (i, waiter) in waiters.into_iter().enumerate() {
        let reply = waiter.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        let index = reply.header("x-nomad-index").unwrap();
        if i == 7 {
            assert_eq!(index, written.to_string());
            assert_eq!(reply.json()["SchedulingEligibility"], "ineligible");
        } else {
            assert_eq!(index, indexes[i], "node {i} moved");
        }
    }
    assert_eq!(server.state_stat("woken_waiters") - woken_before, 1);
}

#[test]
fn prefix_filter_and_pagination() {
    let server = Agent::server();
    let ids = [
        "aaaa1111-0000-4000-8000-000000000001",
        "aaab2222-0000-4000-8000-000000000002",
        "bbbb3333-0000-4000-8000-000000000003",
        "cccc4444-0000-4000-8000-000000000004",
    ];
    for (number, id) in ids.iter().enumerate() {
        let class = if number % 2 == 0 { "even" } else { "odd" };
        register_fake(&server, id, &format!("fake-{number}"), class);
    }
    let listed = |path: &str| -> Vec<String> {
        server
            .get(path)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["ID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed("/v1/nodes"), ids);
    assert_eq!(listed("/v1/nodes?prefix=aaa"), &ids[..2]);
    assert_eq!(listed("/v1/nodes?prefix=aaab2222"), &ids[1..2]);
    assert!(listed("/v1/nodes?prefix=dd").is_empty());
    assert_eq!(
        listed("/v1/nodes?filter=NodeClass%20%3D%3D%20%22odd%22"),
        [ids[1], ids[3]]
    );
    assert_eq!(
        listed(
            "/v1/nodes?filter=Meta.rack%20%3D%3D%20%22even%22%20and%20Name%20%3D%3D%20%22fake-2%22"
        ),
        [ids[2]]
    );

    let first = server.get("/v1/nodes?per_page=3");
    assert_eq!(first.json().as_array().unwrap().len(), 3);
    let token = first.header("x-nomad-nexttoken").expect("a next page");
    assert_eq!(token, ids[3]);
    let second = server.get(&format!("/v1/nodes?per_page=3&next_token={token}"));
    assert_eq!(second.json().as_array().unwrap().len(), 1);
    assert!(second.header("x-nomad-nexttoken").is_none());

    let bad = server.get("/v1/nodes?filter=NodeClass%20%3D%3D");
    assert_eq!(bad.status, 400);
    assert!(
        bad.text
            .starts_with("failed to create result paginator: failed to read filter expression:"),
        "{}",
        bad.text
    );
    let unknown = server.get("/v1/nodes?filter=Nonsense%20%3D%3D%20%22x%22");
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.text.starts_with("failed to read result page:"),
        "{}",
        unknown.text
    );
}

#[test]
fn a_client_agent_lists_and_replaces_its_servers() {
    let server = Agent::server();
    let client = client_of(&server, "");
    assert_eq!(
        client.get("/v1/agent/servers").json(),
        json!([server.rpc_address()])
    );
    let health = client.get("/v1/agent/health").json();
    assert_eq!(health, json!({"client": {"ok": true, "message": "ok"}}));
    // Reads through the client reach the server.
    assert_eq!(
        client.get("/v1/status/leader").json(),
        json!(server.rpc_address())
    );
    let (dead, _, _) = common::free_ports();
    let reply = client.put(&format!("/v1/agent/servers?address=127.0.0.1:{dead}"), "");
    assert_eq!(reply.status, 400);
    let reply = client.put(
        &format!("/v1/agent/servers?address={}", server.rpc_address()),
        "",
    );
    assert_eq!(reply.status, 200);
    let self_body = client.get("/v1/agent/self").json();
    assert_eq!(self_body["member"]["Status"], "none");
    assert!(self_body["stats"]["client"]["heartbeat_ttl"].is_string());
}

#[test]
fn the_node_simulator_registers_and_heartbeats_its_nodes() {
    let server = quick_server();
    let rpc = server.rpc_address();
    let (status, stderr) = common::run_to_exit(&[
        "node-sim",
        "-servers",
        &rpc,
        "-count",
        "25",
        "-duration",
        "4s",
    ]);
    assert!(status.success(), "{stderr}");
    let list = nodes(&server);
    assert_eq!(list.len(), 25);
    assert!(list.iter().all(|node| node["Status"] == "ready"));
    assert!(list
        .iter()
        .all(|node| node["Name"].as_str().unwrap().starts_with("sim-")));
    let full = server
        .get(&format!("/v1/node/{}", list[0]["ID"].as_str().unwrap()))
        .json();
    assert_eq!(full["Meta"]["simulated"], "true");
    assert!(full["Attributes"]["cpu.numcores"].is_string());
    // With the simulator gone, its nodes miss their heartbeats and go down.
    let id = list[0]["ID"].as_str().unwrap().to_string();
    wait_for_node(&server, &id, "down", |n| n["Status"] == "down");
}

#[test]
fn driver_events_reported_by_a_client_are_kept_on_the_node() {
    let server = Agent::server();
    let id = "dddd0000-0000-4000-8000-000000000001";
    register_fake(&server, id, "driver-node", "x");
    let report = |secret: &str| -> Value {
        let body = json!({
            "node_id": id,
            "secret_id": secret,
            "events": [{
                "Message": "Failed to connect to docker daemon: gone",
                "Subsystem": "Driver",
                "Details": {"driver": "docker"},
                "Timestamp": "2026-11-23T00:00:00Z",
                "CreateIndex": 0
            }]
        });
        reqwest::blocking::Client::new()
            .post(format!("http://{}/rpc/node/events", server.rpc_address()))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert!(report("wrong").get("Err").is_some());
    let accepted = report(&uuid_like(id));
    assert!(accepted.get("Ok").is_some(), "{accepted}");
    let node = server.get(&format!("/v1/node/{id}")).json();
    let event = node["Events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["Subsystem"], "Driver");
    assert_eq!(event["Details"]["driver"], "docker");
    assert_eq!(event["CreateIndex"], node["ModifyIndex"]);
}
