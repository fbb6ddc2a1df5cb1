//! The docker driver end to end, through the HTTP API of a real agent and
//! the machine's Docker Engine, with a local busybox image (built by
//! `scripts/build-test-image.sh`; there is no registry): a container runs,
//! its output reaches the logs endpoint, a signal reaches it, a restart
//! replaces it, a stop removes it; group ports are published on loopback;
//! a client killed with SIGKILL re-attaches to its container without
//! starting a second one and copies what it wrote meanwhile; an image that
//! cannot be pulled fails the task with the engine's reason.

mod common;

use std::time::{Duration, Instant};

use common::cluster::eventually;
use common::docker::{containers_of, docker, ready, ContainerReaper, TASK_IMAGE};
use common::jobs::{register, wait_allocs, with_status, SERVER_AND_CLIENT};
use common::Agent;
use serde_json::{json, Value};

fn docker_job(id: &str, config: Value) -> Value {
    json!({
        "ID": id,
        "Type": "service",
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 0, "Mode": "fail"},
            "Tasks": [{
                "Name": "t",
                "Driver": "docker",
                "KillTimeout": 2_000_000_000u64,
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "Config": config
            }]
        }]
    })
}

fn sh(script: &str) -> Value {
    json!({"image": TASK_IMAGE, "command": "sh", "args": ["-c", script]})
}

fn running_alloc(agent: &Agent, job: &str) -> Value {
    let running = wait_allocs(agent, job, "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let id = running[0]["ID"].as_str().unwrap_or_default();
    agent.get(&format!("/v1/allocation/{id}")).json()
}

fn logs(agent: &Agent, alloc_id: &str) -> String {
    agent
        .get(&format!(
            "/v1/client/fs/logs/{alloc_id}?task=t&type=stdout&plain=true"
        ))
        .text
}

fn wait_logs(agent: &Agent, alloc_id: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = logs(agent, alloc_id);
        if text.contains(wanted) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{wanted:?} never logged: {text:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, container]).unwrap_or_default()
}

fn events(agent: &Agent, alloc_id: &str) -> Vec<String> {
    let alloc = agent.get(&format!("/v1/allocation/{alloc_id}")).json();
    alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| event["Type"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_container_runs_logs_takes_signals_restarts_and_is_removed_on_stop() {
    if !ready(TASK_IMAGE, "the docker driver test") {
        return;
    }
    let reaper = ContainerReaper::new();
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    eventually("the node offers docker", || {
        let nodes = agent.get("/v1/nodes?resources=true").json();
        nodes[0]["Drivers"]["docker"]["Healthy"] == json!(true)
    });
    let script = "trap 'echo got-usr1' USR1; echo started in $NOMAD_TASK_DIR; \
                  while true; do sleep 0.2; done";
    register(&agent, &docker_job("web", sh(script)));
    let alloc = running_alloc(&agent, "web");
    let alloc_id = alloc["ID"].as_str().unwrap_or_default().to_string();
    reaper.watch(&alloc_id);
    let name = format!("t-{alloc_id}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(
            &name,
            "{{index .Config.Labels \"com.hashicorp.nomad.alloc_id\"}}"
        ),
        alloc_id
    );
    assert_eq!(
        inspect(&name, "{{.HostConfig.Memory}}"),
        (64 << 20).to_string()
    );
    assert_eq!(containers_of(&alloc_id).len(), 1);
    // The directory variables point inside the container.
    wait_logs(&agent, &alloc_id, "started in /local");

    let reply = agent.post(
        &format!("/v1/client/allocation/{alloc_id}/signal"),
        r#"{"Signal":"SIGUSR1","Task":"t"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    wait_logs(&agent, &alloc_id, "got-usr1");

    let first = inspect(&name, "{{.Id}}");
    let reply = agent.post(
        &format!("/v1/client/allocation/{alloc_id}/restart"),
        r#"{"TaskName":"t"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the restart replaces the container", || {
        let now = inspect(&name, "{{.Id}}");
        !now.is_empty() && now != first && inspect(&name, "{{.State.Running}}") == "true"
    });
    assert_eq!(
        containers_of(&alloc_id).len(),
        1,
        "one container after a restart"
    );
    assert!(events(&agent, &alloc_id).contains(&"Restart Signaled".to_string()));

    let reply = agent.request("DELETE", "/v1/job/web", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the stopped job's container is removed", || {
        containers_of(&alloc_id).is_empty()
    });
}

#[test]
fn group_ports_are_published_and_reachable_on_loopback() {
    if !ready(TASK_IMAGE, "the docker ports test") {
        return;
    }
    let reaper = ContainerReaper::new();
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let mut job = docker_job(
        "http",
        json!({"image": TASK_IMAGE, "command": "httpd", "args": ["-f", "-p", "8080", "-h", "/www"], "ports": ["http"]}),
    );
    job["TaskGroups"][0]["Networks"] = json!([{"DynamicPorts": [{"Label": "http", "To": 8080}]}]);
    register(&agent, &job);
    let alloc = running_alloc(&agent, "http");
    let alloc_id = alloc["ID"].as_str().unwrap_or_default().to_string();
    reaper.watch(&alloc_id);
    let port = &alloc["AllocatedResources"]["Shared"]["Ports"][0];
    let (host, value) = (
        port["HostIP"].as_str().unwrap_or("127.0.0.1").to_string(),
        port["Value"].as_u64().unwrap_or(0),
    );
    assert!(value > 0, "{port}");
    let url = format!("http://{host}:{value}/index.html");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let answer = reqwest::blocking::get(&url).and_then(|reply| reply.text());
        match answer {
            Ok(body) => break body,
            Err(error) => {
                assert!(Instant::now() < deadline, "{url}: {error}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(body.trim(), "hello from caravan");
    let name = format!("t-{alloc_id}");
    let published = inspect(&name, "{{json .HostConfig.PortBindings}}");
    assert!(
        published.contains("8080/tcp") && published.contains("8080/udp"),
        "{published}"
    );
}

#[test]
fn a_killed_client_reattaches_to_its_container_and_copies_what_it_missed() {
    if !ready(TASK_IMAGE, "the docker re-attach test") {
        return;
    }
    let reaper = ContainerReaper::new();
    let mut agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let script = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done";
    register(&agent, &docker_job("count", sh(script)));
    let alloc = running_alloc(&agent, "count");
    let alloc_id = alloc["ID"].as_str().unwrap_or_default().to_string();
    reaper.watch(&alloc_id);
    let name = format!("t-{alloc_id}");
    let container = inspect(&name, "{{.Id}}");
    wait_logs(&agent, &alloc_id, "line-5\n");

    agent.kill9();
    // Output written while no client copies it.
    std::thread::sleep(Duration::from_secs(2));
    agent.restart();
    agent.wait_ready();

    eventually("the allocation is running again", || {
        let alloc = agent.get(&format!("/v1/allocation/{alloc_id}")).json();
        alloc["ClientStatus"] == json!("running")
    });
    assert_eq!(inspect(&name, "{{.Id}}"), container, "the same container");
    assert_eq!(containers_of(&alloc_id), vec![container.clone()]);
    let text = wait_logs(&agent, &alloc_id, "line-60\n");
    // Every line once, in order, across the restart.
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("line-{index}"), "{text}");
    }
    let starts = events(&agent, &alloc_id)
        .iter()
        .filter(|event| event.as_str() == "Started")
        .count();
    assert_eq!(starts, 1, "started once: {:?}", events(&agent, &alloc_id));
    assert_eq!(inspect(&name, "{{.RestartCount}}"), "0");
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_task_with_the_reason() {
    if !ready(TASK_IMAGE, "the docker pull failure test") {
        return;
    }
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let job = docker_job(
        "nopull",
        json!({"image": "caravan-missing.invalid/none:1", "command": "true"}),
    );
    register(&agent, &job);
    let failed = wait_allocs(&agent, "nopull", "a failed allocation", |allocs| {
        with_status(allocs, "failed").len() == 1
    });
    let id = failed[0]["ID"].as_str().unwrap_or_default();
    let alloc = agent.get(&format!("/v1/allocation/{id}")).json();
    let events = alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failure = events
        .iter()
        .find(|event| event["Type"] == json!("Driver Failure"))
        .unwrap_or_else(|| panic!("no Driver Failure event: {events:?}"));
    let text = failure["DisplayMessage"].as_str().unwrap_or_default();
    assert!(
        text.contains("Failed to pull `caravan-missing.invalid/none:1`"),
        "{text}"
    );
}

#[test]
fn a_host_volume_is_mounted_into_the_container_read_write_or_read_only() {
    if !ready(TASK_IMAGE, "the docker host volume test") {
        return;
    }
    let reaper = ContainerReaper::new();
    let shared = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(shared.path().join("seed.txt"), "seeded\n").unwrap_or_default();
    let hcl = format!(
        "server {{\n  enabled = true\n  bootstrap_expect = 1\n}}\n\
         client {{\n  enabled = true\n\
         \x20 host_volume \"shared\" {{\n    path = {:?}\n    read_only = false\n  }}\n}}\n",
        shared.path().display().to_string()
    );
    let agent = Agent::start_with_data_dir(&[], &hcl);
    let mount = |id: &str, read_only: bool, script: &str| {
        let mut job = docker_job(id, sh(script));
        job["TaskGroups"][0]["Volumes"] = json!({
            "data": {"Name": "data", "Type": "host", "Source": "shared", "ReadOnly": false}
        });
        job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] =
            json!([{"Volume": "data", "Destination": "/data", "ReadOnly": read_only}]);
        job["Type"] = json!("batch");
        register(&agent, &job);
        let done = wait_allocs(&agent, id, "the batch run", |allocs| {
            allocs
                .iter()
                .any(|alloc| matches!(alloc["ClientStatus"].as_str(), Some("complete" | "failed")))
        });
        let alloc_id = done[0]["ID"].as_str().unwrap_or_default().to_string();
        reaper.watch(&alloc_id);
        (
            done[0]["ClientStatus"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            alloc_id,
        )
    };
    let (status, _) = mount("writer", false, "cat /data/seed.txt > /data/copy.txt");
    assert_eq!(status, "complete");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("copy.txt")).unwrap_or_default(),
        "seeded\n"
    );
    let (status, alloc_id) = mount(
        "reader",
        true,
        "cat /data/seed.txt; echo no > /data/nope.txt",
    );
    assert_eq!(status, "failed", "a read-only mount refuses the write");
    assert!(!shared.path().join("nope.txt").exists());
    assert_eq!(logs(&agent, &alloc_id), "seeded\n");
}
