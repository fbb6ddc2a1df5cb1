//! Jobs really run: a real agent's client receives its allocations, runs
//! their raw_exec tasks as processes, reports them, restarts them per
//! policy, kills them when stopped, and finds them again after SIGKILL.

mod common;

use common::jobs::{
    event_types, marker, processes_with, register, shell_job, wait_allocs, wait_no_processes,
    with_status, ProcessReaper, SERVER_AND_CLIENT,
};
use common::Agent;
use serde_json::json;

fn agent() -> Agent {
    Agent::start_with_data_dir(&[], SERVER_AND_CLIENT)
}

#[test]
fn a_service_job_runs_its_processes_logs_their_output_and_a_stop_leaves_none() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("service");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let script =
        "echo \"alloc $NOMAD_ALLOC_ID index $NOMAD_ALLOC_INDEX\"; echo oops >&2; sleep 600 & wait";
    register(&agent, &shell_job("svc", "service", 2, script, &marker));
    let allocs = wait_allocs(&agent, "svc", "two running allocations", |allocs| {
        with_status(allocs, "running").len() == 2
    });
    for alloc in &allocs {
        assert_eq!(alloc["TaskStates"]["t"]["State"], "running");
        assert_eq!(
            event_types(alloc, "t"),
            ["Received", "Task Setup", "Started"],
            "{alloc}"
        );
        let id = alloc["ID"].as_str().unwrap();
        let logs = agent.data_dir().join("alloc").join(id).join("alloc/logs");
        let stdout = wait_for_file(&logs.join("t.stdout.0"), "alloc ");
        assert!(stdout.contains(&format!("alloc {id} index")), "{stdout}");
        assert_eq!(wait_for_file(&logs.join("t.stderr.0"), "oops"), "oops\n");
        for dir in ["alloc/data", "alloc/tmp", "t/local", "t/secrets", "t/tmp"] {
            assert!(
                agent.data_dir().join("alloc").join(id).join(dir).is_dir(),
                "{dir}"
            );
        }
    }
    // Each allocation runs a shell and its sleep.
    assert_eq!(processes_with(&marker).len(), 4);

    let reply = agent.request("DELETE", "/v1/job/svc", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let allocs = wait_allocs(&agent, "svc", "both allocations complete", |allocs| {
        with_status(allocs, "complete").len() == 2
    });
    for alloc in &allocs {
        let types = event_types(alloc, "t");
        assert!(
            types.ends_with(&[
                "Killing".to_string(),
                "Terminated".to_string(),
                "Killed".to_string()
            ]),
            "{types:?}"
        );
        assert_eq!(alloc["TaskStates"]["t"]["State"], "dead");
        assert_eq!(alloc["TaskStates"]["t"]["Failed"], false);
    }
    wait_no_processes(&marker);
}

#[test]
fn a_batch_job_runs_to_completion_and_the_job_is_dead() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("batch");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    register(&agent, &shell_job("once", "batch", 1, "echo done", &marker));
    let allocs = wait_allocs(&agent, "once", "a complete allocation", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    assert_eq!(
        event_types(&allocs[0], "t"),
        ["Received", "Task Setup", "Started", "Terminated"]
    );
    common::cluster::eventually("the job to be dead", || {
        agent.get("/v1/job/once").json()["Status"] == "dead"
    });
    let summary = agent.get("/v1/job/once/summary").json();
    assert_eq!(summary["Summary"]["g"]["Complete"], 1, "{summary}");
}

#[test]
fn a_failing_task_is_restarted_per_policy_then_the_allocation_fails() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("failing");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let mut job = shell_job("flaky", "batch", 1, "echo trying; exit 3", &marker);
    job["TaskGroups"][0]["RestartPolicy"] = json!({
        "Attempts": 1, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"
    });
    job["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
    register(&agent, &job);
    let allocs = wait_allocs(&agent, "flaky", "a failed allocation", |allocs| {
        with_status(allocs, "failed").len() == 1
    });
    let state = &allocs[0]["TaskStates"]["t"];
    assert_eq!(state["State"], "dead");
    assert_eq!(state["Failed"], true);
    assert_eq!(state["Restarts"], 1);
    assert_eq!(
        event_types(&allocs[0], "t"),
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    let events = state["Events"].as_array().unwrap();
    assert_eq!(events[3]["DisplayMessage"], "Exit Code: 3");
    assert_eq!(
        events[7]["DisplayMessage"],
        "Exceeded allowed attempts 1 in interval 1m0s and mode is \"fail\""
    );
    assert_eq!(allocs[0]["ClientDescription"], "Failed tasks");
}

#[test]
fn a_missing_command_is_a_driver_failure_event() {
    let agent = agent();
    let mut job = shell_job("nocmd", "batch", 1, "", "unused");
    job["TaskGroups"][0]["Tasks"][0]["Config"] =
        json!({"command": "/nonexistent/caravan-test-binary"});
    job["TaskGroups"][0]["RestartPolicy"] = json!({
        "Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"
    });
    job["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
    register(&agent, &job);
    let allocs = wait_allocs(&agent, "nocmd", "a failed allocation", |allocs| {
        with_status(allocs, "failed").len() == 1
    });
    let types = event_types(&allocs[0], "t");
    assert!(types.contains(&"Driver Failure".to_string()), "{types:?}");
    let events = allocs[0]["TaskStates"]["t"]["Events"].as_array().unwrap();
    let failure = events
        .iter()
        .find(|event| event["Type"] == "Driver Failure")
        .unwrap();
    assert!(
        failure["DriverError"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/caravan-test-binary"),
        "{failure}"
    );
}

#[test]
fn a_client_killed_with_sigkill_reattaches_to_its_task_and_starts_nothing_twice() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("reattach");
    let _reaper = ProcessReaper(marker.clone());
    let mut agent = agent();
    register(
        &agent,
        &shell_job("keep", "service", 1, "sleep 600 & wait", &marker),
    );
    let allocs = wait_allocs(&agent, "keep", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let id = allocs[0]["ID"].as_str().unwrap().to_string();
    let before = processes_with(&marker);
    assert_eq!(before.len(), 2, "{before:?}");

    agent.kill9();
    // The task outlives its client.
    assert_eq!(processes_with(&marker), before);
    agent.respawn();
    agent.wait_ready();
    // Give the restored client time to act, then check it did not start a
    // second copy: the same processes, the same allocation, no restart.
    let allocs = wait_allocs(&agent, "keep", "the allocation still running", |allocs| {
        allocs.len() == 1 && with_status(allocs, "running").len() == 1
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(allocs[0]["ID"], id);
    assert_eq!(processes_with(&marker), before);
    let alloc = agent.get(&format!("/v1/allocation/{id}")).json();
    assert_eq!(alloc["TaskStates"]["t"]["Restarts"], 0, "{alloc}");

    // The task still answers to its client: stopping the job kills it.
    assert_eq!(agent.request("DELETE", "/v1/job/keep", None).status, 200);
    wait_allocs(&agent, "keep", "the allocation complete", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    wait_no_processes(&marker);
}

#[test]
fn a_task_that_died_while_its_client_was_down_is_restarted() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("died");
    let _reaper = ProcessReaper(marker.clone());
    let mut agent = agent();
    let mut job = shell_job("phoenix", "service", 1, "sleep 600 & wait", &marker);
    job["TaskGroups"][0]["RestartPolicy"] = json!({
        "Attempts": 2, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"
    });
    register(&agent, &job);
    wait_allocs(&agent, "phoenix", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    agent.kill9();
    for pid in processes_with(&marker) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_no_processes(&marker);
    agent.respawn();
    agent.wait_ready();
    let allocs = wait_allocs(&agent, "phoenix", "the task restarted", |allocs| {
        allocs.len() == 1
            && allocs[0]["TaskStates"]["t"]["Restarts"] == 1
            && allocs[0]["TaskStates"]["t"]["State"] == "running"
    });
    assert_eq!(processes_with(&marker).len(), 2, "{allocs:?}");
}

/// Waits until `path` contains `needle`, returning its contents.
fn wait_for_file(path: &std::path::Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never contained {needle:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_killed_clients_allocation_is_lost_and_replaced_on_another_node() {
    let marker = marker("lost");
    let _reaper = ProcessReaper(marker.clone());
    let server = Agent::start_with_data_dir(
        &["-server", "-bootstrap-expect", "1"],
        "server {\n  min_heartbeat_ttl = \"1s\"\n  heartbeat_grace = \"1s\"\n}\n",
    );
    let client_hcl = "plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n";
    let mut clients: Vec<Agent> = ["client-a", "client-b"]
        .iter()
        .map(|name| {
            Agent::start_with_data_dir(
                &["-client", "-node", name, "-servers", &server.rpc_address()],
                client_hcl,
            )
        })
        .collect();
    common::cluster::eventually("both nodes ready", || {
        let nodes = server.get("/v1/nodes").json();
        nodes
            .as_array()
            .is_some_and(|nodes| nodes.iter().filter(|n| n["Status"] == "ready").count() == 2)
    });
    let mut job = shell_job("moving", "service", 1, "sleep 600 & wait", &marker);
    // Replace at once rather than after the default 30 s delay.
    job["TaskGroups"][0]["ReschedulePolicy"] = json!({
        "Delay": 5_000_000_000u64, "DelayFunction": "constant", "Unlimited": true
    });
    register(&server, &job);
    let allocs = wait_allocs(&server, "moving", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let first = allocs[0].clone();
    let lost_node = first["NodeName"].as_str().unwrap().to_string();
    let index = usize::from(lost_node == "client-b");
    clients[index].kill9();

    let allocs = wait_allocs(
        &server,
        "moving",
        "the allocation lost and replaced",
        |allocs| {
            let lost = allocs
                .iter()
                .any(|alloc| alloc["ID"] == first["ID"] && alloc["ClientStatus"] == "lost");
            let replaced = allocs.iter().any(|alloc| {
                alloc["ClientStatus"] == "running" && alloc["NodeName"] != lost_node.as_str()
            });
            lost && replaced
        },
    );
    let replacement = allocs
        .iter()
        .find(|alloc| alloc["ClientStatus"] == "running")
        .unwrap();
    assert_eq!(replacement["Name"], first["Name"]);
    let node = server
        .get(&format!("/v1/node/{}", first["NodeID"].as_str().unwrap()))
        .json();
    assert_eq!(node["Status"], "down");
}
