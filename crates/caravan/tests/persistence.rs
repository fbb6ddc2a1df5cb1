//! Durability: every acknowledged write survives SIGKILL, with the same
//! Raft indexes, across snapshots and log compaction.

mod common;

use common::Agent;
use serde_json::{json, Value};

fn scheduler(agent: &Agent) -> Value {
    agent.get("/v1/operator/scheduler/configuration").json()["SchedulerConfig"].clone()
}

fn write_algorithm(agent: &Agent, round: usize) -> u64 {
    let algorithm = if round.is_multiple_of(2) {
        "spread"
    } else {
        "binpack"
    };
    let body = json!({
        "SchedulerAlgorithm": algorithm,
        "MemoryOversubscriptionEnabled": round.is_multiple_of(3),
    });
    let reply = agent.put("/v1/operator/scheduler/configuration", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["Index"].as_u64().unwrap()
}

#[test]
fn acknowledged_writes_survive_sigkill_with_their_indexes() {
    let mut agent = Agent::server();
    let mut last_index = 0;
    for round in 0..25 {
        let index = write_algorithm(&agent, round);
        assert!(
            index > last_index,
            "indexes must grow: {last_index} -> {index}"
        );
        last_index = index;
    }
    let autopilot = json!({"LastContactThreshold": "750ms", "MaxTrailingLogs": 99});
    assert_eq!(
        agent
            .put(
                "/v1/operator/autopilot/configuration",
                &autopilot.to_string()
            )
            .text,
        "true"
    );
    let before_scheduler = scheduler(&agent);
    let before_autopilot = agent.get("/v1/operator/autopilot/configuration").json();
    let leader_before = agent.get("/v1/status/leader").json();

    agent.restart();

    assert_eq!(scheduler(&agent), before_scheduler);
    assert_eq!(before_scheduler["ModifyIndex"], last_index);
    assert_eq!(
        agent.get("/v1/operator/autopilot/configuration").json(),
        before_autopilot
    );
    assert_eq!(agent.get("/v1/status/leader").json(), leader_before);
    // The log continues after the old entries rather than reusing indexes.
    let next = write_algorithm(&agent, 100);
    assert!(next > last_index, "{next} after restart, had {last_index}");
}

#[test]
fn snapshots_and_compaction_keep_the_state() {
    // A tiny threshold makes the server snapshot and purge its log often.
    let mut agent = Agent::start_with_data_dir(
        &["-server", "-bootstrap-expect", "1"],
        "server {\n  raft_snapshot_threshold = 8\n  raft_trailing_logs = 2\n}\n",
    );
    let mut last_index = 0;
    for round in 0..60 {
        last_index = write_algorithm(&agent, round);
    }
    let before = scheduler(&agent);
    let snapshot = agent.data_dir().join("server/snapshots/state.snap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stats = agent.get("/v1/agent/self").json()["stats"]["raft"].clone();
        let snapshot_index: u64 = stats["last_snapshot_index"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        if snapshot.exists() && snapshot_index > 8 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot taken: {stats}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(snapshot.exists());

    agent.restart();

    assert_eq!(scheduler(&agent), before);
    assert_eq!(before["ModifyIndex"], last_index);
    let next = write_algorithm(&agent, 7);
    assert!(next > last_index);
    // And once more, now that the restart itself started from a snapshot.
    agent.restart();
    assert_eq!(scheduler(&agent)["ModifyIndex"], next);
}

#[test]
fn sigterm_shuts_down_cleanly_and_dev_data_goes_away() {
    let mut agent = Agent::dev();
    // The banner may land a moment after the API answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let data = loop {
        let found = agent
            .log()
            .lines()
            .find_map(|line| line.split("Data: ").nth(1).map(|p| p.trim().to_string()));
        if let Some(path) = found {
            break std::path::PathBuf::from(path);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never printed its data directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(data.exists());
    let status = agent.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "exit status {status}");
    assert!(!data.exists(), "{} should be removed", data.display());
}

#[test]
fn sigint_shuts_down_a_server_cleanly() {
    let mut agent = Agent::server();
    write_algorithm(&agent, 0);
    let status = agent.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "exit status {status}");
}

/// A server whose log was compacted behind a snapshot, stopped cleanly.
fn stopped_server_with_a_snapshot() -> (Agent, Value) {
    let mut agent = Agent::start_with_data_dir(
        &["-server", "-bootstrap-expect", "1"],
        "server {\n  raft_snapshot_threshold = 8\n  raft_trailing_logs = 2\n}\n",
    );
    let snapshot = agent.data_dir().join("server/snapshots/state.snap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut round = 0;
    while !snapshot.exists() || round < 20 {
        write_algorithm(&agent, round);
        round += 1;
        assert!(std::time::Instant::now() < deadline, "no snapshot taken");
    }
    let before = scheduler(&agent);
    let status = agent.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "exit status {status}");
    (agent, before)
}

/// Starts the agent again, expecting it to refuse: exit status 1 and a
/// message; returns what it logged this time.
fn refused_start(agent: &mut Agent) -> String {
    let logged_before = agent.log().len();
    agent.respawn();
    let status = agent.wait_exit();
    let log = agent.log()[logged_before..].to_string();
    assert_eq!(status.code(), Some(1), "{log}");
    log
}

#[test]
fn a_damaged_snapshot_stops_the_start_naming_the_file() {
    let (mut agent, before) = stopped_server_with_a_snapshot();
    let snapshot = agent.data_dir().join("server/snapshots/state.snap");
    let original = std::fs::read(&snapshot).unwrap();
    let mut damaged = original.clone();
    // A digit of some index in the state: still valid JSON.
    let position = damaged
        .iter()
        .rposition(|byte| byte.is_ascii_digit())
        .unwrap();
    damaged[position] = if damaged[position] == b'7' {
        b'8'
    } else {
        b'7'
    };
    std::fs::write(&snapshot, &damaged).unwrap();

    let log = refused_start(&mut agent);
    let expected = format!(
        "==> Error starting agent: failed to start the server: data loss: {}",
        snapshot.display()
    );
    assert!(log.contains(&expected), "no {expected:?} in:\n{log}");
    assert!(log.contains("checksum mismatch"), "{log}");

    // Nothing was harmed: with the file put back, the server starts with
    // its state.
    std::fs::write(&snapshot, &original).unwrap();
    agent.restart();
    assert_eq!(scheduler(&agent), before);
}

#[test]
fn a_missing_raft_log_beside_a_snapshot_stops_the_start_naming_the_file() {
    let (mut agent, _) = stopped_server_with_a_snapshot();
    let log_file = agent.data_dir().join("server/raft.redb");
    std::fs::remove_file(&log_file).unwrap();

    let log = refused_start(&mut agent);
    let expected = format!(
        "==> Error starting agent: failed to start the server: data loss: {}",
        log_file.display()
    );
    assert!(log.contains(&expected), "no {expected:?} in:\n{log}");
    assert!(
        !log_file.exists(),
        "a refused start must not create the log"
    );

    // An emptied log is refused the same way, and so is every retry.
    std::fs::write(&log_file, b"").unwrap();
    let log = refused_start(&mut agent);
    assert!(log.contains(&expected), "no {expected:?} in:\n{log}");
}
