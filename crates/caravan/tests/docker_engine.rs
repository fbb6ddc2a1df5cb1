//! The Docker Engine restarted under a running client: the node reports
//! the docker driver unhealthy while the engine is gone (with a `Driver`
//! node event), healthy again when it is back, and the task whose
//! container the engine stopped is restarted by its policy in a new
//! container. The engine is stopped with SIGTERM and started again
//! detached, as it was; a guard starts it again whatever the test does.
//! (nextest runs the docker tests one at a time: `.config/nextest.toml`.)

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{containers_of, docker, ready, ContainerReaper, TASK_IMAGE};
use common::jobs::{register, wait_allocs, with_status, SERVER_AND_CLIENT};
use common::Agent;
use serde_json::{json, Value};

const DOCKERD: &str = "/usr/sbin/dockerd";

fn dockerd_pid() -> Option<i32> {
    let output = Command::new("pidof").arg("dockerd").output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn engine_answers() -> bool {
    docker(&["info", "--format", "{{.ServerVersion}}"]).is_ok()
}

fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts the engine, detached from the test, if it is not running.
fn start_engine() {
    if dockerd_pid().is_none() {
        let started = Command::new("setsid")
            .args(["-f", DOCKERD])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            started.is_ok_and(|status| status.success()),
            "cannot start {DOCKERD}"
        );
    }
    wait_until(
        "the Docker Engine to answer",
        Duration::from_secs(60),
        engine_answers,
    );
}

/// Whatever happens in the test, the engine runs afterwards.
struct EngineGuard;

impl Drop for EngineGuard {
    fn drop(&mut self) {
        start_engine();
    }
}

fn docker_health(agent: &Agent) -> Value {
    let nodes = agent.get("/v1/nodes").json();
    let id = nodes[0]["ID"].as_str().unwrap_or_default().to_string();
    agent.get(&format!("/v1/node/{id}")).json()
}

#[test]
fn a_restarted_engine_is_seen_going_and_coming_back_and_the_task_restarts() {
    if !ready(TASK_IMAGE, "the docker engine restart test") {
        return;
    }
    if !std::path::Path::new(DOCKERD).exists() || dockerd_pid().is_none() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "CI=true but {DOCKERD} is not running here"
        );
        eprintln!("SKIPPED: the engine is not a local {DOCKERD} this test can restart");
        return;
    }
    let reaper = ContainerReaper::new();
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let job = json!({
        "ID": "survivor",
        "Type": "service",
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 5, "Interval": 600_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"},
            "Tasks": [{
                "Name": "t",
                "Driver": "docker",
                "KillTimeout": 1_000_000_000u64,
                "Resources": {"CPU": 100, "MemoryMB": 32},
                "Config": {"image": TASK_IMAGE, "command": "sh", "args": ["-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}
            }]
        }]
    });
    register(&agent, &job);
    let running = wait_allocs(&agent, "survivor", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let alloc_id = running[0]["ID"].as_str().unwrap_or_default().to_string();
    reaper.watch(&alloc_id);
    let name = format!("t-{alloc_id}");
    let first = docker(&["inspect", "--format", "{{.Id}}", &name]).unwrap_or_default();
    assert!(!first.is_empty());

    let _guard = EngineGuard;
    let pid = dockerd_pid().unwrap_or_default();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    wait_until("the engine to stop", Duration::from_secs(60), || {
        dockerd_pid().is_none()
    });
    wait_until(
        "the node to report docker unhealthy",
        Duration::from_secs(90),
        || docker_health(&agent)["Drivers"]["docker"]["Healthy"] == json!(false),
    );
    let node = docker_health(&agent);
    assert_eq!(node["Drivers"]["docker"]["Detected"], json!(true), "{node}");
    let described = node["Drivers"]["docker"]["HealthDescription"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        described.starts_with("Failed to connect to docker daemon"),
        "{described}"
    );
    let events = node["Events"].as_array().cloned().unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|event| event["Subsystem"] == json!("Driver")
                && event["Message"].as_str() == Some(described.as_str())),
        "{events:?}"
    );

    start_engine();
    wait_until(
        "the node to report docker healthy again",
        Duration::from_secs(60),
        || docker_health(&agent)["Drivers"]["docker"]["Healthy"] == json!(true),
    );
    // The engine stopped the container; the policy starts a new one.
    wait_until(
        "the task running in a new container",
        Duration::from_secs(60),
        || {
            let now = docker(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &name])
                .unwrap_or_default();
            now.ends_with(" true") && !now.starts_with(&first)
        },
    );
    assert_eq!(containers_of(&alloc_id).len(), 1);
    let alloc = agent.get(&format!("/v1/allocation/{alloc_id}")).json();
    assert_eq!(alloc["ClientStatus"], json!("running"), "{alloc}");
    assert!(
        alloc["TaskStates"]["t"]["Restarts"].as_u64().unwrap_or(0) >= 1,
        "{alloc}"
    );
}
