//! The RPC port against a caller on the same network: no route applies raw
//! state commands, server-only routes need the cluster key, Raft messages
//! with absurd terms are refused, and node RPCs need the node's own secret.
//! Each test reproduces an attack that worked before.

mod common;

use common::Agent;
use serde_json::{json, Value};

/// A POST to the agent's RPC port: the status and the body as JSON (or
/// `Null` when it is not JSON).
fn rpc_post(agent: &Agent, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{}{path}", agent.rpc_address()))
        .json(body)
        .send()
        .expect("rpc request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn rpc_get(agent: &Agent, path: &str) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .get(format!("http://{}{path}", agent.rpc_address()))
        .send()
        .expect("rpc request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A vote for a term no real cluster reaches, asking voters to ignore
/// their leader lease: before, granted, persisted, and fatal at the next
/// election and at every restart.
fn forged_vote(term: u64) -> Value {
    json!({"Vote": {
        "vote": {"leader_id": {"term": term, "voted_for": 4242}, "committed": false},
        "last_log_id": null,
        "leadership_transfer": true
    }})
}

fn bootstrap(agent: &Agent) -> String {
    let reply = agent.post("/v1/acl/bootstrap", "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["SecretID"].as_str().unwrap().to_string()
}

fn scheduler_write_works(agent: &Agent, token: Option<&str>) {
    let reply = agent.request_with_token(
        "PUT",
        "/v1/operator/scheduler/configuration",
        token,
        r#"{"SchedulerAlgorithm":"spread"}"#,
    );
    assert_eq!(reply.status, 200, "{}\n{}", reply.text, agent.log());
}

#[test]
fn there_is_no_route_that_applies_raw_commands() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let evil_secret = "22222222-2222-4222-8222-222222222222";
    let command = json!({"AclTokenUpsert": {"tokens": [{
        "AccessorID": "11111111-1111-4111-8111-111111111111",
        "SecretID": evil_secret,
        "Name": "evil", "Type": "management", "Policies": [], "Global": true,
        "CreateTime": "2026-01-01T00:00:00Z", "CreateIndex": 0, "ModifyIndex": 0
    }]}});
    let (status, body) = rpc_post(&agent, "/rpc/apply", &command);
    assert_ne!(status, 200, "{body}");
    assert!(body.get("Ok").is_none(), "{body}");
    let listed = agent.request_with_token("GET", "/v1/acl/tokens", Some(evil_secret), "");
    assert_eq!(listed.status, 403, "{}", listed.text);
    let listed = agent.request_with_token("GET", "/v1/acl/tokens", Some(&management), "");
    assert_eq!(listed.status, 200);
    assert!(!listed.text.contains("evil"), "{}", listed.text);
}

#[test]
fn a_dev_agent_refuses_unauthenticated_server_rpcs() {
    let agent = Agent::dev();
    let (status, body) = rpc_post(&agent, "/rpc/raft", &forged_vote(u64::MAX));
    assert_eq!(status, 403, "{body}");
    assert!(body["Err"]["Unauthenticated"].is_string(), "{body}");
    let (status, _) = rpc_post(&agent, "/rpc/raft/remove-peer", &json!("anything"));
    assert_eq!(status, 403);
    let (status, _) = rpc_get(&agent, "/rpc/raft/read-index");
    assert_eq!(status, 403);
    let (status, _) = rpc_get(&agent, "/rpc/raft/status");
    assert_eq!(status, 403);
    // A snapshot install with a forged vote in its (signed) query.
    let (status, _) = rpc_post(&agent, "/rpc/raft/snapshot?vote=7b7d", &json!({}));
    assert_eq!(status, 403);
    // A header that merely looks right is refused too.
    let response = reqwest::blocking::Client::new()
        .get(format!(
            "http://{}/rpc/raft/read-index",
            agent.rpc_address()
        ))
        .header("x-caravan-cluster-auth", "v1 1 00")
        .header("x-caravan-body-sha256", "0".repeat(64))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // The ping stays open: clients check a server's region with it.
    let (status, body) = rpc_get(&agent, "/rpc/ping");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["region"], "global");
    scheduler_write_works(&agent, None);
}

#[test]
fn a_forged_vote_with_an_absurd_term_is_refused_and_survives_restart() {
    // A server without any key: its Raft route is open (the agent warns),
    // but messages beyond the term bound never reach openraft.
    let mut agent = Agent::server();
    assert!(
        agent.log().contains("accept any caller"),
        "the agent should warn that its ports are open:\n{}",
        agent.log()
    );
    let before = agent.get("/v1/agent/self").json()["stats"]["raft"]["term"].clone();
    let (status, body) = rpc_post(&agent, "/rpc/raft", &forged_vote(u64::MAX));
    assert_eq!(status, 200, "{body}");
    assert!(
        body["Err"]["Invalid"]
            .as_str()
            .is_some_and(|text| text.contains("term or index")),
        "{body}"
    );
    let (_, body) = rpc_post(&agent, "/rpc/raft", &forged_vote(u64::MAX - 1));
    assert!(body.get("Err").is_some(), "{body}");
    let after = agent.get("/v1/agent/self").json()["stats"]["raft"]["term"].clone();
    assert_eq!(before, after, "the forged vote changed the term");
    scheduler_write_works(&agent, None);
    agent.restart();
    scheduler_write_works(&agent, None);
}

#[test]
fn a_node_cannot_be_registered_over_with_another_secret_or_a_bad_status() {
    let agent = Agent::dev();
    let id = "5b1f3e2a-0c1d-4e5f-8a9b-0123456789ab";
    let node = |secret: &str, status: &str| {
        json!({
            "ID": id, "SecretID": secret, "Name": "victim", "Datacenter": "dc1",
            "HTTPAddr": "127.0.0.9:4646", "Status": status,
        })
    };
    let (_, first) = rpc_post(&agent, "/rpc/node/register", &node("secret-one", "ready"));
    assert!(first.get("Ok").is_some(), "{first}");
    let (_, hijack) = rpc_post(&agent, "/rpc/node/register", &node("secret-two", "ready"));
    assert_eq!(hijack["Err"], "SecretMismatch", "{hijack}");
    let stored = agent.get(&format!("/v1/node/{id}")).json();
    assert_eq!(stored["Name"], "victim");
    let (_, bad) = rpc_post(&agent, "/rpc/node/register", &node("secret-one", "pwned"));
    assert!(bad["Err"]["Invalid"].is_string(), "{bad}");
    let beat = |status: &str| json!({"node_id": id, "secret_id": "secret-one", "status": status});
    let (_, pwned) = rpc_post(&agent, "/rpc/node/heartbeat", &beat("pwned"));
    assert!(pwned["Err"]["Invalid"].is_string(), "{pwned}");
    let (_, ok) = rpc_post(&agent, "/rpc/node/heartbeat", &beat("ready"));
    assert!(ok.get("Ok").is_some(), "{ok}");
    assert_eq!(
        agent.get(&format!("/v1/node/{id}")).json()["Status"],
        "ready"
    );
    let wrong = json!({"node_id": id, "secret_id": "secret-two", "status": "down"});
    let (_, refused) = rpc_post(&agent, "/rpc/node/heartbeat", &wrong);
    assert_eq!(refused["Err"], "SecretMismatch", "{refused}");
    let empty = json!({"node_id": id, "secret_id": "", "status": "down"});
    let (_, refused) = rpc_post(&agent, "/rpc/node/heartbeat", &empty);
    assert_eq!(refused["Err"], "SecretMismatch", "{refused}");
    let unknown = json!({
        "node_id": "00000000-0000-4000-8000-00000000dead",
        "secret_id": "x",
        "status": "ready"
    });
    let (_, missing) = rpc_post(&agent, "/rpc/node/heartbeat", &unknown);
    assert_eq!(missing["Err"], "NodeNotFound", "{missing}");
}

#[test]
fn rpc_bodies_are_bounded_per_route() {
    let agent = Agent::dev();
    // 8 MB of garbage to a node route, whose limit is a few MB: refused
    // without being decoded, and the agent keeps answering.
    let garbage = vec![b'x'; 8 << 20];
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{}/rpc/node/register", agent.rpc_address()))
        .header("content-type", "application/json")
        .body(garbage)
        .send();
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 413);
    }
    // The allocation routes: a batch of reports has the node routes' limit,
    // the allocation query (a node ID, a secret, two numbers) a small one.
    for (path, size) in [
        ("/rpc/node/allocs/update", 8 << 20),
        ("/rpc/node/allocs", 64 << 10),
    ] {
        let response = reqwest::blocking::Client::new()
            .post(format!("http://{}{path}", agent.rpc_address()))
            .header("content-type", "application/json")
            .body(vec![b'x'; size])
            .send();
        if let Ok(response) = response {
            assert_eq!(response.status().as_u16(), 413, "{path}");
        }
    }
    assert_eq!(agent.get("/v1/status/leader").status, 200);
}

#[test]
fn a_server_with_a_gossip_key_refuses_unsigned_server_rpcs() {
    let key = "ozUifk3lZ4XRu0J4W0y5Zt3aS7Rjw4KLrO9n4lBQm4g=";
    let agent = Agent::start_with_data_dir(
        &["-server", "-bootstrap-expect", "1"],
        &format!("server {{\n  encrypt = \"{key}\"\n}}\n"),
    );
    assert!(
        !agent.log().contains("accept any caller"),
        "{}",
        agent.log()
    );
    let (status, body) = rpc_post(&agent, "/rpc/raft", &forged_vote(5));
    assert_eq!(status, 403, "{body}");
    let (status, _) = rpc_post(&agent, "/rpc/raft/remove-peer", &json!("x"));
    assert_eq!(status, 403);
    scheduler_write_works(&agent, None);
}
