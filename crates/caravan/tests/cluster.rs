//! Multi-server clusters as separate processes on this machine: gossip
//! formation with bootstrap_expect, forwarding, stale reads, leader loss,
//! autopilot, force-leave, peer removal and a fourth server joining.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{eventually, Cluster};
use serde_json::{json, Value};

fn voters(configuration: &Value) -> usize {
    configuration["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Voter"] == true)
        .count()
}

/// Registers a fake node through a server's client RPC; true if acknowledged.
fn register_node(rpc_address: &str, id: &str) -> bool {
    let node = json!({
        "ID": id, "SecretID": format!("secret-{id}"), "Name": format!("n-{id}"),
        "Datacenter": "dc1", "HTTPAddr": "127.0.0.9:4646",
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let Ok(response) = client
        .post(format!("http://{rpc_address}/rpc/node/register"))
        .json(&node)
        .send()
    else {
        return false;
    };
    response
        .json::<Value>()
        .map(|reply| reply.get("Ok").is_some())
        .unwrap_or(false)
}

fn node_ids(cluster: &Cluster, index: usize) -> BTreeSet<String> {
    cluster
        .get(index, "/v1/nodes?stale")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ID"].as_str().unwrap().to_string())
        .collect()
}

fn uuid(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

#[test]
fn three_servers_form_one_cluster_by_gossip() {
    let cluster = Cluster::start(3, "");
    let leader = cluster.leader();
    let configuration = cluster.raft_configuration(leader);
    assert_eq!(voters(&configuration), 3);
    assert_eq!(
        configuration["Servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Leader"] == true)
            .count(),
        1
    );
    for index in 0..3 {
        let peers = cluster.get(index, "/v1/status/peers").json();
        assert_eq!(peers.as_array().unwrap().len(), 3);
        let members = cluster.get(index, "/v1/agent/members").json();
        let members = members["Members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        for member in members {
            assert_eq!(member["Status"], "alive");
            assert_eq!(member["Tags"]["role"], "nomad");
            assert_eq!(member["Tags"]["expect"], "3");
            assert!(member["Name"].as_str().unwrap().ends_with(".global"));
        }
    }
    // Every server answers the same leader, followers by forwarding.
    let expected = cluster.servers[leader].rpc_address();
    for index in 0..3 {
        assert_eq!(
            cluster.get(index, "/v1/status/leader").json(),
            json!(expected)
        );
    }
    cluster.eventually("a healthy autopilot", || {
        let reply = cluster.get(leader, "/v1/operator/autopilot/health");
        reply.status == 200 && reply.json()["Healthy"] == true
    });
    let health = cluster.get(leader, "/v1/operator/autopilot/health").json();
    assert_eq!(health["FailureTolerance"], 1);
    let servers = health["Servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for server in servers {
        for key in [
            "ID",
            "Name",
            "Address",
            "SerfStatus",
            "Version",
            "Leader",
            "LastContact",
            "LastTerm",
            "LastIndex",
            "Healthy",
            "Voter",
            "StableSince",
        ] {
            assert!(server.get(key).is_some(), "health lacks {key}");
        }
        assert_eq!(server["SerfStatus"], "alive");
        assert!(server["LastIndex"].as_u64().unwrap() > 0);
    }
}

#[test]
fn followers_forward_writes_and_serve_stale_reads() {
    let cluster = Cluster::start(3, "");
    let follower = cluster.follower();
    let leader = cluster.leader();
    let write = cluster.servers[follower].put(
        "/v1/operator/scheduler/configuration",
        r#"{"SchedulerAlgorithm": "spread"}"#,
    );
    assert_eq!(write.status, 200, "{}", write.text);
    let index = write.json()["Index"].as_u64().unwrap();
    let on_leader = cluster
        .get(leader, "/v1/operator/scheduler/configuration")
        .json();
    assert_eq!(on_leader["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    // A default read on a follower is answered by the leader.
    let forwarded = cluster.get(follower, "/v1/operator/scheduler/configuration");
    assert_eq!(
        forwarded.header("x-nomad-knownleader").as_deref(),
        Some("true")
    );
    assert_eq!(
        forwarded.header("x-nomad-lastcontact").as_deref(),
        Some("0")
    );
    // A stale read is answered by the follower itself from its own copy.
    cluster.eventually("the follower to apply the write", || {
        let stale = cluster.get(follower, "/v1/operator/scheduler/configuration?stale");
        stale.json()["SchedulerConfig"]["ModifyIndex"].as_u64() == Some(index)
    });
    let stale = cluster.get(follower, "/v1/operator/scheduler/configuration?stale");
    assert_eq!(stale.header("x-nomad-knownleader").as_deref(), Some("true"));
    let contact: u64 = stale
        .header("x-nomad-lastcontact")
        .unwrap()
        .parse()
        .unwrap();
    assert!(contact < 60_000, "last contact {contact} ms");
}

#[test]
fn losing_the_leader_loses_no_acknowledged_write_and_it_catches_up() {
    let mut cluster = Cluster::start(
        3,
        "server {\n  raft_snapshot_threshold = 64\n  raft_trailing_logs = 16\n}\n",
    );
    let old_leader = cluster.leader();
    let addresses: Vec<String> = cluster.servers.iter().map(|s| s.rpc_address()).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        let stop = Arc::clone(&stop);
        let addresses = addresses.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                let id = uuid(n);
                // Any live server takes the write; a dead one is skipped.
                let target = &addresses[n % addresses.len()];
                if register_node(target, &id) {
                    acknowledged.lock().unwrap().push(id);
                }
                n += 1;
            }
        })
    };
    cluster.eventually("some writes", || acknowledged.lock().unwrap().len() >= 40);
    cluster.servers[old_leader].kill9();
    let before_kill = acknowledged.lock().unwrap().len();
    cluster.eventually("more writes after the leader died", || {
        acknowledged.lock().unwrap().len() >= before_kill + 40
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader);
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    for survivor in (0..3).filter(|i| *i != old_leader) {
        cluster.eventually("the survivor to hold every acknowledged write", || {
            node_ids(&cluster, survivor).is_superset(&acknowledged)
        });
    }
    // The old leader comes back, rejoins and catches up (by snapshot: its
    // log is far behind the compacted log of the others).
    cluster.servers[old_leader].restart_unready();
    cluster.eventually("the old leader to catch up", || {
        node_ids(&cluster, old_leader).is_superset(&acknowledged)
    });
    cluster.wait_for_voters(3);
}

#[test]
fn autopilot_health_goes_429_and_back_to_200() {
    let mut cluster = Cluster::start(3, "autopilot {\n  cleanup_dead_servers = false\n}\n");
    let leader = cluster.leader();
    cluster.eventually("healthy", || {
        cluster.get(leader, "/v1/operator/autopilot/health").status == 200
    });
    let victim = cluster.follower();
    cluster.servers[victim].kill9();
    cluster.eventually("unhealthy", || {
        let reply = cluster.get(leader, "/v1/operator/autopilot/health");
        reply.status == 429 && reply.json()["Healthy"] == false
    });
    let health = cluster.get(leader, "/v1/operator/autopilot/health").json();
    assert_eq!(health["FailureTolerance"], 0);
    let victim_id = cluster.raft_configuration(leader)["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Address"] == cluster.servers[victim].rpc_address())
        .unwrap()["ID"]
        .clone();
    let entry = health["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ID"] == victim_id)
        .unwrap()
        .clone();
    assert_eq!(entry["Healthy"], false);
    cluster.servers[victim].restart_unready();
    cluster.eventually("healthy again", || {
        let reply = cluster.get(leader, "/v1/operator/autopilot/health");
        reply.status == 200 && reply.json()["Healthy"] == true
    });
}

#[test]
fn force_leave_with_prune_removes_a_failed_server() {
    let mut cluster = Cluster::start(3, "autopilot {\n  cleanup_dead_servers = false\n}\n");
    let leader = cluster.leader();
    let victim = cluster.follower();
    let members = cluster.get(leader, "/v1/agent/members").json();
    let name = members["Members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Port"] == cluster.servers[victim].serf_port)
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.servers[victim].kill9();
    let status_of = |name: &str| -> Option<String> {
        cluster.get(leader, "/v1/agent/members").json()["Members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Name"] == name)
            .map(|m| m["Status"].as_str().unwrap().to_string())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status_of(&name).as_deref() != Some("failed") {
        if std::time::Instant::now() > deadline {
            panic!(
                "the member never failed: {}\n{}",
                cluster.get(leader, "/v1/agent/members").text,
                cluster.servers[leader].log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let unknown = cluster.servers[leader].post("/v1/agent/force-leave?node=nobody.global", "");
    assert_eq!(unknown.status, 200);
    let missing = cluster.servers[leader].post("/v1/agent/force-leave", "");
    assert_eq!(missing.status, 400);
    let reply =
        cluster.servers[leader].post(&format!("/v1/agent/force-leave?node={name}&prune=true"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        status_of(&name),
        None,
        "{}",
        cluster.get(leader, "/v1/agent/members").text
    );
    cluster.eventually("the server to leave Raft", || {
        cluster.raft_configuration(leader)["Servers"]
            .as_array()
            .unwrap()
            .len()
            == 2
    });
}

#[test]
fn raft_peer_removal_by_id_and_address() {
    let cluster = Cluster::start(3, "");
    let leader = cluster.leader();
    let path = "/v1/operator/raft/peer";
    assert_eq!(
        cluster.servers[leader].request("DELETE", path, None).status,
        400
    );
    let both = cluster.servers[leader].request("DELETE", &format!("{path}?id=x&address=y"), None);
    assert_eq!(both.status, 400);
    assert_eq!(both.text, "Must specify only one of ?id or ?address");
    let unknown = cluster.servers[leader].request("DELETE", &format!("{path}?id=nope"), None);
    assert_eq!(unknown.status, 404);
    assert_eq!(cluster.servers[leader].get(path).status, 404);

    // Remove a follower by address: it leaves the configuration (and, still
    // alive in gossip, autopilot adds it back as a non-voter later).
    let follower = cluster.follower();
    let address = cluster.servers[follower].rpc_address();
    let reply =
        cluster.servers[leader].request("DELETE", &format!("{path}?address={address}"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "");
    cluster.eventually("the follower to leave the voters", || {
        !cluster.raft_configuration(leader)["Servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Address"] == address && s["Voter"] == true)
    });

    // Removing the leader by id makes it step down.
    let leader_id = cluster.raft_configuration(leader)["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Leader"] == true)
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = cluster.servers[leader].request("DELETE", &format!("{path}?id={leader_id}"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("another leader", || {
        let leader_now = cluster.get(follower, "/v1/status/leader?stale").json();
        leader_now
            .as_str()
            .is_some_and(|l| !l.is_empty() && l != cluster.servers[leader].rpc_address())
    });
}

#[test]
fn a_fourth_server_joins_as_non_voter_and_is_promoted() {
    let mut cluster = Cluster::start(3, "");
    let fourth = cluster.add_server();
    let address = cluster.servers[fourth].rpc_address();
    let leader = cluster.leader();
    cluster.eventually("the fourth server in the configuration", || {
        cluster.raft_configuration(leader)["Servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Address"] == address)
    });
    cluster.eventually("the fourth server promoted", || {
        cluster.raft_configuration(leader)["Servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Address"] == address && s["Voter"] == true)
    });
    assert_eq!(
        cluster
            .get(fourth, "/v1/status/peers")
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // It caught up: a write made before it joined is visible on it.
    let config = cluster
        .get(fourth, "/v1/operator/scheduler/configuration?stale")
        .json();
    assert_eq!(config["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
}

#[test]
fn without_a_quorum_reads_and_writes_fail_but_stale_reads_answer() {
    let mut cluster = Cluster::start(3, "autopilot {\n  cleanup_dead_servers = false\n}\n");
    let survivor = cluster.follower();
    // The survivor must have applied the initial configuration first.
    eventually("the follower to apply the initial writes", || {
        cluster
            .get(survivor, "/v1/operator/scheduler/configuration?stale")
            .status
            == 200
    });
    for index in 0..3 {
        if index != survivor {
            cluster.servers[index].kill9();
        }
    }
    eventually("the survivor to lose its leader", || {
        cluster.get(survivor, "/v1/status/leader?stale").json() == json!("")
            || cluster
                .get(survivor, "/v1/agent/health?type=server&stale")
                .status
                == 500
    });
    let read = cluster.get(survivor, "/v1/operator/scheduler/configuration");
    assert_eq!(read.status, 500);
    assert_eq!(read.text, "No cluster leader");
    let write = cluster.servers[survivor].put("/v1/operator/scheduler/configuration", "{}");
    assert_eq!(write.status, 500);
    assert_eq!(write.text, "No cluster leader");
    let stale = cluster.get(survivor, "/v1/operator/scheduler/configuration?stale");
    assert_eq!(stale.status, 200, "{}", stale.text);
    assert_eq!(
        stale.header("x-nomad-knownleader").as_deref(),
        Some("false")
    );
}

#[test]
fn a_deleted_token_stops_working_on_every_server_at_once() {
    let cluster = Cluster::start(3, "acl {\n  enabled = true\n}\n");
    let leader = cluster.leader();
    let bootstrap = cluster.servers[leader].post("/v1/acl/bootstrap", "");
    assert_eq!(bootstrap.status, 200, "{}", bootstrap.text);
    let management = bootstrap.json()["SecretID"].as_str().unwrap().to_string();
    let m = Some(management.as_str());
    let policy = json!({"Rules": "agent {\n  policy = \"read\"\n}\n"});
    let follower = cluster.follower();
    assert_eq!(
        cluster.servers[follower]
            .request_with_token("POST", "/v1/acl/policy/agent-read", m, &policy.to_string())
            .status,
        200
    );
    let token = cluster.servers[follower]
        .request_with_token(
            "POST",
            "/v1/acl/token",
            m,
            &json!({"Type": "client", "Policies": ["agent-read"]}).to_string(),
        )
        .json();
    let secret = token["SecretID"].as_str().unwrap().to_string();
    let accessor = token["AccessorID"].as_str().unwrap().to_string();
    // /v1/agent/self is answered by each server itself, from its own state.
    for server in &cluster.servers {
        let reply = server.request_with_token("GET", "/v1/agent/self", Some(&secret), "");
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let deleted = cluster.servers[follower].request_with_token(
        "DELETE",
        &format!("/v1/acl/token/{accessor}"),
        m,
        "",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    for server in &cluster.servers {
        let reply = server.request_with_token("GET", "/v1/agent/self", Some(&secret), "");
        assert_eq!(
            reply.status,
            403,
            "server on {} still accepts the token",
            server.rpc_address()
        );
        assert_eq!(reply.text, "ACL token not found");
    }
}

#[test]
fn a_client_fails_over_when_its_server_dies() {
    let mut cluster = Cluster::start(
        3,
        "server {\n  min_heartbeat_ttl = \"1s\"\n  heartbeat_grace = \"1s\"\n  failover_heartbeat_ttl = \"2s\"\n}\n",
    );
    let servers: Vec<String> = cluster.servers.iter().map(|s| s.rpc_address()).collect();
    let client = common::Agent::start_with_data_dir(
        &[
            "-client",
            "-node",
            "roaming",
            "-servers",
            &servers.join(","),
        ],
        "",
    );
    let survivor = 1;
    let node_id = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let list = cluster.get(survivor, "/v1/nodes").json();
            if let Some(node) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["Status"] == "ready")
            {
                break node["ID"].as_str().unwrap().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client never registered"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The client talks to the first server it was given; kill it.
    cluster.servers[0].kill9();
    // Over several TTLs (plus the new leader's failover TTL) the node must
    // stay ready: its heartbeats reach the surviving servers.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until {
        let reply = cluster.get(survivor, &format!("/v1/node/{node_id}?stale"));
        if reply.status == 200 {
            assert_ne!(
                reply.json()["Status"],
                "down",
                "the node went down: {}",
                reply.text
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = client.get("/v1/agent/self").json()["stats"]["client"].clone();
    let since = stats["last_heartbeat"].as_str().unwrap().to_string();
    assert!(
        !since.contains('m') || since.ends_with("ms"),
        "last heartbeat {since} ago"
    );
    let ready = cluster.get(survivor, &format!("/v1/node/{node_id}")).json();
    assert_eq!(ready["Status"], "ready");
}

#[test]
fn leadership_moves_to_the_server_named() {
    let cluster = Cluster::start(3, "");
    let leader = cluster.leader();
    let path = "/v1/operator/raft/transfer-leadership";
    assert_eq!(
        cluster.servers[leader].put(path, "").text,
        "must specify id or address"
    );
    assert_eq!(
        cluster.servers[leader]
            .put(&format!("{path}?id=a&address=b"), "")
            .text,
        "must specify either id or address"
    );
    assert_eq!(
        cluster.servers[leader]
            .put(&format!("{path}?address=1.2.3.4:9"), "")
            .status,
        404
    );
    let target = cluster.follower();
    let address = cluster.servers[target].rpc_address();
    let reply = cluster.servers[leader].put(&format!("{path}?address={address}"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the named server to lead", || cluster.leader() == target);
}

/// The leader duties run on whichever server leads: after the leader is
/// killed, the new leader's heartbeat timers mark down a node that stopped
/// heartbeating (after the failover TTL, not before), and its drainer
/// completes a drain.
#[test]
fn a_new_leader_starts_the_leader_duties() {
    let mut cluster = Cluster::start(
        3,
        "server {\n  min_heartbeat_ttl = \"1s\"\n  heartbeat_grace = \"1s\"\n  failover_heartbeat_ttl = \"4s\"\n}\n",
    );
    let old = cluster.leader();
    let silent = uuid(41);
    cluster.eventually("the silent node registering", || {
        register_node(&cluster.servers[old].rpc_address(), &silent)
    });
    cluster.servers[old].kill9();
    let killed_at = std::time::Instant::now();
    let leader = cluster.leader();
    assert_ne!(leader, old);

    // The new leader gives the silent node the failover TTL, then its own
    // heartbeat timers mark it down.
    let status = |index: usize| {
        let reply = cluster.get(index, &format!("/v1/node/{silent}?stale"));
        (reply.status == 200).then(|| reply.json())
    };
    cluster.eventually("the new leader marking the silent node down", || {
        status(leader).is_some_and(|node| node["Status"] == "down")
    });
    assert!(
        killed_at.elapsed() >= Duration::from_secs(4),
        "marked down before the failover TTL ran out"
    );
    let node = status(leader).unwrap();
    let events: Vec<&str> = node["Events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["Message"].as_str())
        .collect();
    assert!(events.contains(&"Node heartbeat missed"), "{events:?}");

    // The new leader's drainer completes a drain with nothing to move.
    let drained = uuid(42);
    cluster.eventually("a node registering with the new leader", || {
        register_node(&cluster.servers[leader].rpc_address(), &drained)
    });
    let body = json!({"DrainSpec": {"Deadline": 3_600_000_000_000i64}});
    let reply =
        cluster.servers[leader].post(&format!("/v1/node/{drained}/drain"), &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    cluster.eventually("the new leader completing the drain", || {
        let reply = cluster.get(leader, &format!("/v1/node/{drained}"));
        reply.status == 200
            && reply.json()["DrainStrategy"].is_null()
            && reply.json()["SchedulingEligibility"] == "ineligible"
    });
}
