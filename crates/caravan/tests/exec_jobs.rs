//! The exec driver through a real agent's HTTP API: a job with
//! `driver = "exec"` runs isolated (PID 1, its own hostname, a root of
//! bind mounts), its output reaches the logs, and a stop leaves no
//! process and no cgroup. Needs root and cgroups; says so and passes
//! without them.

mod common;

use std::time::{Duration, Instant};

use common::cluster::eventually;
use common::jobs::{
    marker, processes_with, register, wait_allocs, wait_no_processes, with_status, ProcessReaper,
    SERVER_AND_CLIENT,
};
use common::Agent;
use serde_json::{json, Value};

fn exec_job(id: &str, script: &str, marker: &str) -> Value {
    json!({
        "ID": id,
        "Type": "service",
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "t",
                "Driver": "exec",
                "KillTimeout": 2_000_000_000u64,
                "Resources": {"CPU": 100, "MemoryMB": 64},
                "Env": {"CARAVAN_TEST_MARKER": marker},
                "Config": {"command": "/bin/sh", "args": ["-c", script]}
            }]
        }]
    })
}

fn wait_logs(agent: &Agent, alloc_id: &str, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = agent
            .get(&format!(
                "/v1/client/fs/logs/{alloc_id}?task=t&type=stdout&plain=true"
            ))
            .text;
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

#[test]
fn an_exec_job_runs_isolated_and_a_stop_leaves_nothing_behind() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: the exec driver needs root");
        return;
    }
    if caravan_drivers::exec::cgroup::Hierarchy::detect().is_err() {
        eprintln!("skipping: the exec driver needs the memory and cpu cgroup controllers");
        return;
    }
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("exec-job");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    eventually("the node offers exec", || {
        let nodes = agent.get("/v1/nodes?resources=true").json();
        let exec = &nodes[0]["Drivers"]["exec"];
        exec["Detected"] == json!(true) && exec["Healthy"] == json!(true)
    });
    let nodes = agent.get("/v1/nodes?resources=true").json();
    assert_eq!(
        nodes[0]["Drivers"]["exec"]["Attributes"]["driver.exec"], "true",
        "{nodes}"
    );

    let script = "echo pid=$$; echo host=$(hostname); echo dir=$NOMAD_TASK_DIR; \
                  ls /; touch /usr/probe 2>/dev/null || echo usr=readonly; \
                  echo uid=$(id -u); \
                  for dir in /local /secrets /tmp /alloc/data; do echo x > $dir/w || exit 1; done; \
                  echo writes=ok; \
                  sleep 600 & echo ready; wait";
    register(&agent, &exec_job("isolated", script, &marker));
    let running = wait_allocs(&agent, "isolated", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let alloc_id = running[0]["ID"].as_str().unwrap_or_default().to_string();
    let out = wait_logs(&agent, &alloc_id, "ready");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(
        lines[1],
        format!("host={}", host.to_string_lossy()),
        "{out}"
    );
    assert_eq!(lines[2], "dir=/local", "{out}");
    // The task directory is the root: its own dirs and the bound system
    // ones, nothing else of the host's (no /root, /home, /work).
    for entry in [
        "alloc", "local", "secrets", "tmp", "usr", "etc", "proc", "dev",
    ] {
        assert!(lines.contains(&entry), "/ lacks {entry}: {out}");
    }
    for entry in ["root", "home", "work", "var"] {
        assert!(!lines.contains(&entry), "/ shows the host's {entry}: {out}");
    }
    assert!(lines.contains(&"usr=readonly"), "{out}");
    // As nobody, not root; its own and the shared directories writable.
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert!(
        lines.contains(&format!("uid={}", nobody.uid).as_str()),
        "{out}"
    );
    assert!(lines.contains(&"writes=ok"), "{out}");
    // The shell and its sleep, seen from the host.
    let pids = processes_with(&marker);
    assert_eq!(pids.len(), 2, "{pids:?}");

    let reply = agent.request("DELETE", "/v1/job/isolated", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let allocs = wait_allocs(&agent, "isolated", "the allocation complete", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    assert_eq!(allocs[0]["TaskStates"]["t"]["State"], "dead");
    wait_no_processes(&marker);
    for pid in pids {
        assert!(
            caravan_drivers::proc::stat(pid).is_none_or(|stat| stat.exited()),
            "process {pid} survived the stop"
        );
    }
    let cgroup = caravan_drivers::exec::cgroup::Hierarchy::detect()
        .unwrap()
        .cgroup(&caravan_drivers::exec::cgroup::cgroup_name(&format!(
            "{alloc_id}/t"
        )));
    eventually("the task's cgroup to go", || !cgroup.exists());
}
