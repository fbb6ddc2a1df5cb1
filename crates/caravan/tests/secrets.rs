//! Secrets stay secret: no SecretID reaches the log even at TRACE, and the
//! files that hold secrets or state are readable by the agent's user only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::{json, Value};

fn bootstrap(agent: &Agent) -> Value {
    let reply = agent.post("/v1/acl/bootstrap", "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

fn create_token(agent: &Agent, management: &str) -> Value {
    let body = json!({"Name": "ops", "Type": "management"});
    let reply =
        agent.request_with_token("POST", "/v1/acl/token", Some(management), &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// The ID of the dev agent's own node once it has registered.
fn wait_for_node(agent: &Agent, token: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = agent.request_with_token("GET", "/v1/nodes", token, "");
        if reply.status == 200 {
            if let Some(id) = reply.json()[0]["ID"].as_str() {
                return id.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node never registered: {}",
            reply.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The data directory a `-dev` agent prints in its banner.
fn dev_data_dir(agent: &Agent) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = agent
            .log()
            .lines()
            .find_map(|line| line.split("Data: ").nth(1).map(|p| p.trim().to_string()));
        if let Some(path) = found {
            return PathBuf::from(path);
        }
        assert!(
            Instant::now() < deadline,
            "the agent never printed its data directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn no_secret_reaches_the_log_even_at_trace() {
    let mut agent = Agent::start_at_log_level(&["-dev", "-acl-enabled", "-log-level", "TRACE"], "");
    let bootstrap_token = bootstrap(&agent);
    let management = bootstrap_token["SecretID"].as_str().unwrap().to_string();
    let created = create_token(&agent, &management);
    let created_secret = created["SecretID"].as_str().unwrap().to_string();
    let created_accessor = created["AccessorID"].as_str().unwrap().to_string();
    let node_id = wait_for_node(&agent, Some(&management));
    let node_secret = std::fs::read_to_string(dev_data_dir(&agent).join("client/secret-id"))
        .expect("the node's secret-id file")
        .trim()
        .to_string();
    // Let a heartbeat or two go by, and use both tokens once more.
    std::thread::sleep(Duration::from_secs(2));
    for token in [&management, &created_secret] {
        let reply = agent.request_with_token("GET", "/v1/acl/token/self", Some(token), "");
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let status = agent.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "exit status {status}");

    let log = agent.log();
    // The log is at TRACE, and the writes that carried the secrets are in
    // it (so the test could fail)...
    assert!(log.contains(" TRACE "), "not a TRACE log");
    for evidence in [
        "AclBootstrap(accessor=".to_string(),
        format!("AclTokenUpsert(accessors=[\"{created_accessor}\"])"),
        format!("NodeRegister(node=\"{node_id}\""),
    ] {
        assert!(log.contains(&evidence), "no {evidence:?} in the log");
    }
    // ...but none of the secrets is.
    for (what, secret) in [
        ("the bootstrap token's secret", &management),
        ("the created token's secret", &created_secret),
        ("the node's secret", &node_secret),
    ] {
        assert_eq!(secret.len(), 36, "{what}: {secret:?}");
        if let Some(line) = log.lines().find(|line| line.contains(secret.as_str())) {
            panic!("{what} is in the log: {line}");
        }
    }
}

#[test]
fn data_files_are_private() {
    let mut agent = Agent::start_with_data_dir(
        &["-server", "-client", "-bootstrap-expect", "1"],
        "server {\n  raft_snapshot_threshold = 4\n  raft_trailing_logs = 1\n}\n",
    );
    // Enough writes for a snapshot.
    let snapshot = agent.data_dir().join("server/snapshots/state.snap");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    while !snapshot.exists() {
        let body = json!({"SchedulerAlgorithm": if round % 2 == 0 { "spread" } else { "binpack" }});
        let reply = agent.put("/v1/operator/scheduler/configuration", &body.to_string());
        assert_eq!(reply.status, 200, "{}", reply.text);
        round += 1;
        assert!(Instant::now() < deadline, "no snapshot taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_node(&agent, None);
    let status = agent.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "exit status {status}");

    let data = agent.data_dir();
    for dir in ["server", "server/snapshots", "client"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
    for file in [
        "server/raft.redb",
        "server/node-id",
        "server/snapshots/state.snap",
        "client/client-id",
        "client/secret-id",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    // No temporary file was left behind.
    let leftovers: Vec<String> = std::fs::read_dir(data.join("server/snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "state.snap")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
