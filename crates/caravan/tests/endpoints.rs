//! Every endpoint of the foundation against a real `agent -dev`, with the
//! exact JSON shapes and headers Nomad's clients read.

mod common;

use common::Agent;
use serde_json::{json, Value};

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    list.sort();
    list
}

#[test]
fn status_leader_and_peers_name_this_server() {
    let agent = Agent::dev();
    let leader = agent.get("/v1/status/leader");
    assert_eq!(leader.status, 200);
    assert_eq!(leader.json(), json!(agent.rpc_address()));
    assert_eq!(
        leader.header("content-type").as_deref(),
        Some("application/json")
    );
    let peers = agent.get("/v1/status/peers");
    assert_eq!(peers.json(), json!([agent.rpc_address()]));
    let stale = agent.get("/v1/status/leader?stale");
    assert_eq!(stale.json(), json!(agent.rpc_address()));
}

#[test]
fn every_query_carries_the_nomad_headers() {
    let agent = Agent::dev();
    for path in [
        "/v1/status/leader",
        "/v1/status/peers",
        "/v1/regions",
        "/v1/agent/self",
        "/v1/agent/members",
        "/v1/agent/health",
        "/v1/agent/servers",
        "/v1/operator/raft/configuration",
        "/v1/operator/autopilot/configuration",
        "/v1/operator/scheduler/configuration",
    ] {
        let reply = agent.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let index = reply.header("x-nomad-index").expect(path);
        assert!(index.parse::<u64>().is_ok(), "{path}: index {index}");
        assert_eq!(
            reply.header("x-nomad-knownleader").as_deref(),
            Some("true"),
            "{path}"
        );
        let contact = reply.header("x-nomad-lastcontact").expect(path);
        assert!(contact.parse::<u64>().is_ok(), "{path}: {contact}");
    }
}

#[test]
fn regions_lists_the_agent_region() {
    let agent = Agent::start(&["-dev", "-region", "east"], "");
    assert_eq!(agent.get("/v1/regions").json(), json!(["east"]));
    // The status endpoints accept the region by name...
    assert_eq!(agent.get("/v1/status/leader?region=east").status, 200);
    // ...and refuse one with no path to it.
    let unknown = agent.get("/v1/status/leader?region=west");
    assert_eq!(unknown.status, 500);
    assert_eq!(unknown.text, "No path to region");
}

#[test]
fn agent_self_has_config_member_and_real_raft_stats() {
    let agent = Agent::start(&["-dev", "-node", "pynomad1", "-dc", "dc7"], "");
    let body = agent.get("/v1/agent/self").json();
    assert_eq!(keys(&body), sorted(&["config", "member", "stats"]));
    let config = &body["config"];
    assert_eq!(config["Region"], "global");
    assert_eq!(config["Datacenter"], "dc7");
    assert_eq!(config["NodeName"], "pynomad1");
    assert_eq!(config["DevMode"], true);
    assert_eq!(config["Ports"]["HTTP"], agent.http_port);
    assert_eq!(config["Server"]["Enabled"], true);
    assert_eq!(config["Client"]["Enabled"], true);
    assert_eq!(config["ACL"]["Enabled"], false);

    let member = &body["member"];
    assert_eq!(member["Name"], "pynomad1.global");
    assert_eq!(member["Status"], "alive");
    assert_eq!(member["Port"], agent.serf_port);
    assert_eq!(member["Tags"]["role"], "nomad");
    assert_eq!(member["Tags"]["dc"], "dc7");
    assert_eq!(member["Tags"]["port"], agent.rpc_port.to_string());

    let stats = &body["stats"];
    for section in ["raft", "nomad", "runtime"] {
        assert!(stats[section].is_object(), "missing stats.{section}");
    }
    assert_eq!(stats["nomad"]["leader"], "true");
    assert_eq!(stats["nomad"]["leader_addr"], agent.rpc_address());
    let raft = &stats["raft"];
    assert_eq!(raft["state"], "Leader");
    let number = |key: &str| -> u64 {
        raft[key]
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("stats.raft.{key} = {}", raft[key]))
    };
    assert!(number("term") >= 1);
    // The leader wrote at least its two configuration defaults.
    assert!(number("last_log_index") >= 2);
    assert!(number("applied_index") >= 2);
    assert_eq!(number("num_peers"), 0);
    let before = number("applied_index");
    agent.put(
        "/v1/operator/scheduler/configuration",
        r#"{"SchedulerAlgorithm":"spread"}"#,
    );
    let after: u64 = agent.get("/v1/agent/self").json()["stats"]["raft"]["applied_index"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        after > before,
        "applied_index did not move: {before} -> {after}"
    );
    assert!(stats["runtime"]["cpu_count"].as_str().is_some());
}

#[test]
fn members_lists_this_server_with_nomad_tags() {
    let agent = Agent::start(&["-dev", "-node", "alpha"], "");
    let body = agent.get("/v1/agent/members").json();
    assert_eq!(
        keys(&body),
        sorted(&["ServerName", "ServerRegion", "ServerDC", "Members"])
    );
    assert_eq!(body["ServerName"], "alpha");
    let member = &body["Members"][0];
    assert_eq!(
        keys(member),
        sorted(&[
            "Name",
            "Addr",
            "Port",
            "Tags",
            "Status",
            "ProtocolMin",
            "ProtocolMax",
            "ProtocolCur",
            "DelegateMin",
            "DelegateMax",
            "DelegateCur"
        ])
    );
    assert_eq!(member["Tags"]["bootstrap"], "1");
    assert_eq!(member["Tags"]["region"], "global");
}

#[test]
fn health_reports_both_roles() {
    let agent = Agent::dev();
    let reply = agent.get("/v1/agent/health");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"client": {"ok": true, "message": "ok"}, "server": {"ok": true, "message": "ok"}})
    );
    let only_server = agent.get("/v1/agent/health?type=server").json();
    assert!(only_server.get("client").is_none());
    assert_eq!(only_server["server"]["ok"], true);
}

#[test]
fn health_of_a_server_without_leader_is_500_with_the_json_body() {
    // A server that expects three peers never elects a leader alone.
    let agent = Agent::start_with_data_dir_unready(&["-server", "-bootstrap-expect", "3"]);
    let reply = agent.get("/v1/agent/health?type=server&stale");
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.json()["server"]["ok"], false);
    let client_missing = agent.get("/v1/agent/health?type=client&stale");
    assert_eq!(client_missing.status, 500);
    assert_eq!(
        client_missing.json()["client"],
        json!({"ok": false, "message": "client not enabled"})
    );
    // Consistent reads and writes wait for a leader, then fail as Nomad does.
    let leader = agent.get("/v1/status/leader");
    assert_eq!(leader.status, 500);
    assert_eq!(leader.text, "No cluster leader");
    let stale = agent.get("/v1/status/leader?stale");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.json(), json!(""));
}

#[test]
fn agent_servers_lists_and_replaces_the_client_servers() {
    let agent = Agent::dev();
    assert_eq!(
        agent.get("/v1/agent/servers").json(),
        json!([agent.rpc_address()])
    );
    let missing = agent.post("/v1/agent/servers", "");
    assert_eq!(missing.status, 400);
    assert_eq!(missing.text, "missing server address");
    // An address where nothing listens is dropped; with nothing left the
    // list is kept and the call fails.
    let (dead_port, _, _) = common::free_ports();
    let unreachable = agent.post(
        &format!("/v1/agent/servers?address=127.0.0.1:{dead_port}"),
        "",
    );
    assert_eq!(unreachable.status, 400, "{}", unreachable.text);
    assert_eq!(
        agent.get("/v1/agent/servers").json(),
        json!([agent.rpc_address()])
    );
    let both = agent.put(
        &format!(
            "/v1/agent/servers?address={}&address=127.0.0.1:{dead_port}",
            agent.rpc_address()
        ),
        "",
    );
    assert_eq!(both.status, 200, "{}", both.text);
    assert_eq!(both.text, "");
    assert_eq!(
        agent.get("/v1/agent/servers").json(),
        json!([agent.rpc_address()])
    );
}

#[test]
fn agent_servers_is_not_served_by_a_server_only_agent() {
    let agent = Agent::server();
    let reply = agent.get("/v1/agent/servers");
    assert_eq!(reply.status, 501);
    assert_eq!(reply.text, "Invalid method");
}

#[test]
fn raft_configuration_has_the_one_voter() {
    let agent = Agent::dev();
    let body = agent.get("/v1/operator/raft/configuration").json();
    assert_eq!(keys(&body), sorted(&["Index", "Servers"]));
    let servers = body["Servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    let server = &servers[0];
    assert_eq!(
        keys(server),
        sorted(&["ID", "Node", "Address", "Leader", "Voter", "RaftProtocol"])
    );
    assert_eq!(server["Address"], agent.rpc_address());
    assert_eq!(server["Leader"], true);
    assert_eq!(server["Voter"], true);
    let member_id = agent.get("/v1/agent/members").json()["Members"][0]["Tags"]["id"].clone();
    assert_eq!(server["ID"], member_id);
    assert_eq!(
        agent
            .request("DELETE", "/v1/operator/raft/configuration", None)
            .status,
        405
    );
}

#[test]
fn autopilot_configuration_reads_writes_and_cas() {
    let agent = Agent::dev();
    let initial = agent.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(
        keys(&initial),
        sorted(&[
            "CleanupDeadServers",
            "LastContactThreshold",
            "MaxTrailingLogs",
            "MinQuorum",
            "ServerStabilizationTime",
            "EnableRedundancyZones",
            "DisableUpgradeMigration",
            "EnableCustomUpgrades",
            "CreateIndex",
            "ModifyIndex"
        ])
    );
    assert_eq!(initial["LastContactThreshold"], "200ms");
    assert_eq!(initial["ServerStabilizationTime"], "10s");
    assert_eq!(initial["MaxTrailingLogs"], 250);
    assert_eq!(initial["CleanupDeadServers"], true);

    let update = json!({
        "CleanupDeadServers": false,
        "LastContactThreshold": "1s",
        "MaxTrailingLogs": 500,
        "ServerStabilizationTime": "30s"
    });
    let reply = agent.put("/v1/operator/autopilot/configuration", &update.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "true");
    assert!(reply.header("x-nomad-index").is_some());
    let stored = agent.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(stored["LastContactThreshold"], "1s");
    assert_eq!(stored["ServerStabilizationTime"], "30s");
    assert_eq!(stored["MaxTrailingLogs"], 500);
    assert_eq!(stored["CleanupDeadServers"], false);
    // A PUT is a full replacement: what it leaves out is zero.
    assert_eq!(stored["MinQuorum"], 0);
    assert_eq!(stored["CreateIndex"], initial["CreateIndex"]);

    let modify = stored["ModifyIndex"].as_u64().unwrap();
    let stale = agent.put(
        &format!("/v1/operator/autopilot/configuration?cas={}", modify - 1),
        &json!({"LastContactThreshold": "5s"}).to_string(),
    );
    assert_eq!(stale.text, "false");
    assert_eq!(
        agent.get("/v1/operator/autopilot/configuration").json()["LastContactThreshold"],
        "1s"
    );
    let fresh = agent.put(
        &format!("/v1/operator/autopilot/configuration?cas={modify}"),
        &json!({"LastContactThreshold": "5s"}).to_string(),
    );
    assert_eq!(fresh.text, "true");
    assert_eq!(
        agent.get("/v1/operator/autopilot/configuration").json()["LastContactThreshold"],
        "5s"
    );
    // Nomad answers POST here with 404.
    let post = agent.post("/v1/operator/autopilot/configuration", "{}");
    assert_eq!(post.status, 404);
    assert_eq!(post.text, "Invalid method");
}

#[test]
fn scheduler_configuration_reads_writes_and_cas() {
    let agent = Agent::dev();
    let initial = agent.get("/v1/operator/scheduler/configuration");
    let body = initial.json();
    assert_eq!(
        keys(&body),
        sorted(&[
            "SchedulerConfig",
            "Index",
            "LastContact",
            "KnownLeader",
            "NextToken"
        ])
    );
    let config = &body["SchedulerConfig"];
    assert_eq!(config["SchedulerAlgorithm"], "binpack");
    assert_eq!(
        config["PreemptionConfig"],
        json!({
            "SystemSchedulerEnabled": true,
            "SysBatchSchedulerEnabled": false,
            "BatchSchedulerEnabled": false,
            "ServiceSchedulerEnabled": false
        })
    );
    for flag in [
        "MemoryOversubscriptionEnabled",
        "RejectJobRegistration",
        "PauseEvalBroker",
    ] {
        assert_eq!(config[flag], false, "{flag}");
    }
    assert_eq!(
        initial.header("x-nomad-index").unwrap(),
        body["Index"].to_string()
    );

    let update = json!({
        "SchedulerAlgorithm": "spread",
        "MemoryOversubscriptionEnabled": true,
        "PreemptionConfig": {"BatchSchedulerEnabled": true}
    });
    let reply = agent.put("/v1/operator/scheduler/configuration", &update.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    let written = reply.json();
    assert_eq!(written["Updated"], true);
    let index = written["Index"].as_u64().unwrap();
    assert_eq!(reply.header("x-nomad-index").unwrap(), index.to_string());
    let stored = agent.get("/v1/operator/scheduler/configuration").json();
    let config = &stored["SchedulerConfig"];
    assert_eq!(config["SchedulerAlgorithm"], "spread");
    assert_eq!(config["MemoryOversubscriptionEnabled"], true);
    assert_eq!(config["ModifyIndex"], index);
    // Full replacement: the system preemption flag left out is now off.
    assert_eq!(config["PreemptionConfig"]["SystemSchedulerEnabled"], false);
    assert_eq!(config["PreemptionConfig"]["BatchSchedulerEnabled"], true);

    // POST works the same; CAS against an old index does not apply.
    let stale = agent.post(
        &format!("/v1/operator/scheduler/configuration?cas={}", index - 1),
        r#"{"SchedulerAlgorithm":"binpack"}"#,
    );
    assert_eq!(stale.json()["Updated"], false);
    let fresh = agent.post(
        &format!("/v1/operator/scheduler/configuration?cas={index}"),
        r#"{"SchedulerAlgorithm":"binpack","PauseEvalBroker":true}"#,
    );
    assert_eq!(fresh.json()["Updated"], true);
    let config = agent.get("/v1/operator/scheduler/configuration").json();
    assert_eq!(config["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
    assert_eq!(config["SchedulerConfig"]["PauseEvalBroker"], true);
}

#[test]
fn pretty_indents_with_four_spaces() {
    let agent = Agent::dev();
    let pretty = agent.get("/v1/status/peers?pretty");
    assert_eq!(
        pretty.text,
        format!("[\n    \"{}\"\n]\n", agent.rpc_address())
    );
    let compact = agent.get("/v1/status/peers?pretty=0");
    assert_eq!(compact.text, format!("[\"{}\"]", agent.rpc_address()));
}

#[test]
fn unknown_paths_and_methods() {
    let agent = Agent::dev();
    let missing = agent.get("/v1/no/such/thing");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text, "");
    let wrong = agent.request("DELETE", "/v1/operator/scheduler/configuration", None);
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.text, "Invalid method");
    // A doubled leading slash still reaches the route.
    assert_eq!(agent.get("//v1/status/leader").status, 200);
}

#[test]
fn join_that_reaches_nobody_answers_200_with_the_reason() {
    let agent = Agent::server();
    let missing = agent.post("/v1/agent/join", "");
    assert_eq!(missing.status, 400);
    assert_eq!(missing.text, "missing address to join");
    let (dead, _, _) = common::free_ports();
    let reply = agent.post(&format!("/v1/agent/join?address=127.0.0.1:{dead}"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["num_joined"], 0);
    assert!(!body["error"].as_str().unwrap().is_empty());
    // A client-only agent does not gossip: Nomad answers 501 there.
    let client = Agent::start_with_data_dir(&["-client", "-servers", &agent.rpc_address()], "");
    let on_client = client.post(&format!("/v1/agent/join?address=127.0.0.1:{dead}"), "");
    assert_eq!(on_client.status, 501);
}

#[test]
fn body_field_names_match_without_regard_to_case_as_in_go() {
    let agent = Agent::dev();
    let reply = agent.put(
        "/v1/operator/scheduler/configuration",
        r#"{"schedulerAlgorithm": "spread", "memoryoversubscriptionenabled": true}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let config =
        agent.get("/v1/operator/scheduler/configuration").json()["SchedulerConfig"].clone();
    assert_eq!(config["SchedulerAlgorithm"], "spread");
    assert_eq!(config["MemoryOversubscriptionEnabled"], true);
}
