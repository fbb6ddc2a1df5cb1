//! Gossip encryption against the real binary: keyed servers form a cluster,
//! servers without the key never join it (nor its Raft configuration), the
//! keyring API, `operator gossip keyring generate`, and force-leave sparing
//! a live server.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{eventually, Cluster};
use common::{free_ports, run_to_exit, Agent, BINARY};
use serde_json::{json, Value};

const KEY: &str = "HVmWtNSxZ0ZbQl8rFNz2qUzDcT26IiCxDxdeL+qp1WY=";
const OTHER_KEY: &str = "cg8StVXbQJ0gPvMd9o7yrg==";

fn encrypt_hcl(key: &str) -> String {
    format!("server {{\n  encrypt = \"{key}\"\n}}\n")
}

fn member_names(agent: &Agent) -> Vec<String> {
    agent.get("/v1/agent/members").json()["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["Name"].as_str().unwrap().to_string())
        .collect()
}

fn alive_members(agent: &Agent) -> usize {
    agent.get("/v1/agent/members").json()["Members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|member| member["Status"] == "alive")
        .count()
}

fn raft_addresses(agent: &Agent) -> Vec<String> {
    agent.get("/v1/operator/raft/configuration?stale").json()["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|server| server["Address"].as_str().unwrap().to_string())
        .collect()
}

fn voters(agent: &Agent) -> usize {
    agent.get("/v1/operator/raft/configuration?stale").json()["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|server| server["Voter"] == true)
        .count()
}

/// A server that retry-joins `serf_port` (the stray of the incident), with
/// `extra_hcl` for its key, if any.
fn stray(serf_port: u16, extra_hcl: &str) -> Agent {
    let hcl = format!(
        "server {{\n  server_join {{\n    retry_join = [\"127.0.0.1:{serf_port}\"]\n    retry_interval = \"1s\"\n  }}\n}}\n{extra_hcl}"
    );
    let agent = Agent::launch_server_on(free_ports(), &hcl);
    agent.wait_answering();
    agent
}

#[test]
fn keyed_servers_form_a_cluster_and_others_stay_out() {
    let cluster = Cluster::start(2, &encrypt_hcl(KEY));
    for server in &cluster.servers {
        eventually("both servers alive in the members", || {
            alive_members(server) == 2
        });
        let names = member_names(server);
        for other in &cluster.servers {
            assert!(
                names
                    .iter()
                    .any(|name| name.starts_with(&format!("server-{}.", other.http_port))),
                "{names:?}"
            );
        }
        let keyring = server
            .data_dir()
            .join("server")
            .join("serf")
            .join("keyring");
        let keys: Vec<String> =
            serde_json::from_slice(&std::fs::read(&keyring).expect("keyring file")).unwrap();
        assert_eq!(keys, [KEY]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&keyring).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    let seed = cluster.serf_ports[0];
    let wrong_key = stray(seed, &encrypt_hcl(OTHER_KEY));
    let no_key = stray(seed, "");
    let outsiders = [
        format!("server-{}.", wrong_key.http_port),
        format!("server-{}.", no_key.http_port),
    ];
    let outsider_rpc = [wrong_key.rpc_address(), no_key.rpc_address()];
    // The strays retry every second; give them several rounds, and check
    // throughout that the keyed servers never see them.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for server in &cluster.servers {
            let names = member_names(server);
            assert!(
                !names
                    .iter()
                    .any(|name| outsiders.iter().any(|o| name.starts_with(o))),
                "an outsider joined: {names:?}"
            );
            let peers = raft_addresses(server);
            assert!(
                !peers.iter().any(|peer| outsider_rpc.contains(peer)),
                "an outsider is a Raft peer: {peers:?}"
            );
            assert_eq!(peers.len(), 2, "{peers:?}");
        }
        for outsider in [&wrong_key, &no_key] {
            assert_eq!(member_names(outsider).len(), 1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The cluster is unharmed: it still has its two voters and a leader.
    cluster.wait_for_voters(2);
}

#[test]
fn the_keyring_api_lists_installs_uses_and_removes() {
    let mut agent =
        Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1", "-encrypt", KEY], "");
    let list = |agent: &Agent| -> Value {
        let reply = agent.get("/v1/agent/keyring/list");
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()
    };
    assert_eq!(
        list(&agent),
        json!({"Messages": {}, "Keys": {(KEY): 1}, "NumNodes": 1})
    );

    let this = agent.get("/v1/agent/self").json();
    assert_eq!(this["stats"]["serf"]["encrypted"], "true");
    assert_eq!(this["config"]["Server"]["EncryptKey"], "<redacted>");
    assert!(!agent.get("/v1/agent/self").text.contains(KEY));

    let body = |key: &str| json!({ "Key": key }).to_string();
    let reply = agent.put("/v1/agent/keyring/install", &body(OTHER_KEY));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["NumNodes"], 1);
    assert_eq!(list(&agent)["Keys"], json!({(KEY): 1, (OTHER_KEY): 1}));

    let reply = agent.post("/v1/agent/keyring/remove", &body(KEY));
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .text
            .contains("Removing the primary key is not allowed"),
        "{}",
        reply.text
    );
    let reply = agent.put("/v1/agent/keyring/install", &body("c2hvcnQ="));
    assert_eq!(reply.status, 500, "{}", reply.text);
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA==";
    let reply = agent.put("/v1/agent/keyring/use", &body(unknown));
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(reply.text.contains("not in the keyring"), "{}", reply.text);

    let reply = agent.put("/v1/agent/keyring/use", &body(OTHER_KEY));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = agent.put("/v1/agent/keyring/remove", &body(KEY));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(list(&agent)["Keys"], json!({(OTHER_KEY): 1}));
    assert_eq!(
        agent.post("/v1/agent/keyring/list", "").status,
        405,
        "list is a GET"
    );

    // The keyring file outlives a restart and wins over -encrypt.
    agent.restart();
    assert_eq!(list(&agent)["Keys"], json!({(OTHER_KEY): 1}));

    // Without a key there is no keyring to show or change.
    let plain = Agent::dev();
    let reply = plain.get("/v1/agent/keyring/list");
    assert_eq!(reply.status, 500);
    assert!(
        reply.text.contains("encryption not enabled"),
        "{}",
        reply.text
    );
    let reply = plain.put("/v1/agent/keyring/install", &body(KEY));
    assert_eq!(reply.status, 500);
}

#[test]
fn bad_keys_stop_the_agent_and_generate_makes_good_ones() {
    for bad in ["not-base64!", "c2hvcnQ="] {
        let (status, stderr) = run_to_exit(&["agent", "-dev", "-encrypt", bad]);
        assert!(!status.success());
        assert!(stderr.contains("encrypt"), "{stderr}");
    }
    for command in [
        &["operator", "gossip", "keyring", "generate"][..],
        &["operator", "keygen"],
    ] {
        let output = Command::new(BINARY)
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "{command:?}");
        let key = String::from_utf8(output.stdout).unwrap();
        let key = key.trim();
        assert_eq!(key.len(), 44, "{key}");
        // The generated key starts an agent.
        let agent = Agent::start(&["-dev", "-encrypt", key], "");
        assert_eq!(agent.get("/v1/agent/keyring/list").json()["Keys"][key], 1);
    }
}

#[test]
fn force_leave_of_a_live_server_keeps_it_a_voter() {
    let cluster = Cluster::start(2, &encrypt_hcl(KEY));
    let leader = cluster.leader();
    let other = 1 - leader;
    eventually("both servers alive", || {
        alive_members(&cluster.servers[leader]) == 2
    });
    let name = member_names(&cluster.servers[leader])
        .into_iter()
        .find(|name| name.starts_with(&format!("server-{}.", cluster.servers[other].http_port)))
        .unwrap();
    let reply =
        cluster.servers[leader].post(&format!("/v1/agent/force-leave?node={name}&prune=true"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    for server in &cluster.servers {
        assert_eq!(voters(server), 2);
        assert_eq!(alive_members(server), 2);
    }
    cluster.wait_for_voters(2);
    assert_eq!(alive_members(&cluster.servers[leader]), 2);
}
