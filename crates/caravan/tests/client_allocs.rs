//! The client allocation endpoints against real agents running raw_exec
//! tasks: a signal reaches the task and is recorded, a restart replaces the
//! task's process (not the allocation) outside the restart policy, stats
//! measure the task's processes, collection removes only terminal
//! allocations, the node's stats and collection, the ACL checks, and a
//! server-only agent relaying to the client agent that holds the work.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::eventually;
use common::jobs::{
    allocs, event_types, marker, register, shell_job, wait_allocs, with_status, ProcessReaper,
    SERVER_AND_CLIENT,
};
use common::Agent;
use serde_json::{json, Value};

fn agent() -> Agent {
    Agent::start_with_data_dir(&[], SERVER_AND_CLIENT)
}

/// Runs `script` as a one-allocation service job and returns its running
/// allocation's ID.
fn run_service(agent: &Agent, id: &str, script: &str, marker: &str) -> String {
    let mut job = shell_job(id, "service", 1, script, marker);
    // No restart by policy: a restart the policy counted would fail it.
    job["TaskGroups"][0]["RestartPolicy"] = json!({
        "Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 0, "Mode": "fail"
    });
    register(agent, &job);
    let running = wait_allocs(agent, id, "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    running[0]["ID"].as_str().unwrap_or_default().to_string()
}

fn task_dir(agent: &Agent, alloc_id: &str) -> PathBuf {
    agent.data_dir().join("alloc").join(alloc_id).join("t")
}

fn wait_for_file(path: &Path, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{}: {text:?}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alloc(agent: &Agent, id: &str) -> Value {
    agent.get(&format!("/v1/allocation/{id}")).json()
}

fn events(alloc: &Value) -> Vec<Value> {
    alloc["TaskStates"]["t"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const TRAPS_USR1: &str = "echo $$ > \"$NOMAD_TASK_DIR/pid\"; trap 'echo got >> \"$NOMAD_TASK_DIR/signaled\"' USR1; while true; do sleep 0.2; done";

#[test]
fn a_signal_reaches_the_task_and_stats_measure_it() {
    let marker = marker("client-signal");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let id = run_service(&agent, "sig", TRAPS_USR1, &marker);
    let path = format!("/v1/client/allocation/{id}/signal");
    let reply = agent.post(&path, r#"{"Signal":"SIGUSR1","Task":"t"}"#);
    assert_eq!(reply.status, 200, "{}", reply.text);
    wait_for_file(&task_dir(&agent, &id).join("local/signaled"), |text| {
        text.contains("got")
    });
    eventually("the Signaling event", || {
        events(&alloc(&agent, &id)).iter().any(|event| {
            event["Type"] == "Signaling"
                && event["DisplayMessage"] == "Task being sent signal SIGUSR1"
        })
    });

    let reply = agent.put(&path, r#"{"Signal":"SIGNOPE"}"#);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("invalid signal"), "{}", reply.text);
    let reply = agent.put(&path, r#"{"Signal":"SIGHUP","Task":"nope"}"#);
    assert_eq!((reply.status, reply.text.as_str()), (500, "Task not found"));
    assert_eq!(agent.get(&path).status, 405);
    let unknown = "/v1/client/allocation/7d1e0a52-1111-4d6e-9d1c-1a2b3c4d5e6f/signal";
    assert_eq!(agent.put(unknown, r#"{"Signal":"SIGHUP"}"#).status, 404);

    let stats = agent.get(&format!("/v1/client/allocation/{id}/stats"));
    assert_eq!(stats.status, 200, "{}", stats.text);
    let stats = stats.json();
    let memory = &stats["Tasks"]["t"]["ResourceUsage"]["MemoryStats"];
    assert!(memory["RSS"].as_u64().is_some_and(|rss| rss > 0), "{stats}");
    assert_eq!(memory["Measured"], json!(["RSS"]));
    assert!(stats["ResourceUsage"]["MemoryStats"]["RSS"].as_u64() >= memory["RSS"].as_u64());
    assert!(stats["ResourceUsage"]["CpuStats"]["Percent"].is_number());
    assert!(stats["Timestamp"].as_i64().is_some_and(|at| at > 0));
    let one = agent.get(&format!("/v1/client/allocation/{id}/stats?task=t"));
    assert_eq!(one.status, 200, "{}", one.text);
    let nope = agent.get(&format!("/v1/client/allocation/{id}/stats?task=nope"));
    assert_eq!(nope.status, 500, "{}", nope.text);
}

#[test]
fn a_restart_replaces_the_process_not_the_allocation_outside_the_policy() {
    let marker = marker("client-restart");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let id = run_service(&agent, "rs", TRAPS_USR1, &marker);
    let pid_file = task_dir(&agent, &id).join("local/pid");
    let path = format!("/v1/client/allocation/{id}/restart");
    let mut pid = wait_for_file(&pid_file, |text| !text.trim().is_empty());
    // Twice: the policy allows no restart, so one it counted would fail
    // the task.
    for (round, body) in [r#"{"TaskName":"t"}"#, ""].into_iter().enumerate() {
        let reply = agent.put(&path, body);
        assert_eq!(reply.status, 200, "{}", reply.text);
        pid = wait_for_file(&pid_file, |text| !text.trim().is_empty() && text != pid);
        eventually("the task to run again", || {
            let state = &alloc(&agent, &id)["TaskStates"]["t"];
            state["State"] == "running" && state["Restarts"] == round + 1
        });
    }
    let current = allocs(&agent, "rs");
    assert_eq!(current.len(), 1, "no replacement allocation");
    assert_eq!(current[0]["ID"], id.as_str());
    assert_eq!(current[0]["ClientStatus"], "running");
    let state = alloc(&agent, &id)["TaskStates"]["t"].clone();
    assert_eq!(state["Failed"], false);
    let types = event_types(&alloc(&agent, &id), "t");
    assert!(
        types.ends_with(&[
            "Restart Signaled".into(),
            "Terminated".into(),
            "Restarting".into(),
            "Started".into()
        ]),
        "{types:?}"
    );
    let reasons: Vec<String> = events(&alloc(&agent, &id))
        .iter()
        .filter(|event| event["Type"] == "Restart Signaled")
        .map(|event| event["DisplayMessage"].as_str().unwrap_or_default().into())
        .collect();
    assert_eq!(
        reasons,
        [
            "User requested task to restart",
            "User requested running tasks to restart"
        ]
    );

    let reply = agent.put(&path, r#"{"TaskName":"t","AllTasks":true}"#);
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (500, "task name cannot be set when restarting all tasks")
    );
}

#[test]
fn collection_removes_terminal_allocations_and_the_node_reports_its_stats() {
    let marker = marker("client-gc");
    let _reaper = ProcessReaper(marker.clone());
    let agent = agent();
    let live = run_service(&agent, "live", "sleep 600 & wait", &marker);
    let stopped = run_service(&agent, "gone", "sleep 600 & wait", &marker);
    let reply = agent.request("DELETE", "/v1/job/gone", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    wait_allocs(
        &agent,
        "gone",
        "the stopped allocation complete",
        |allocs| with_status(allocs, "complete").len() == 1,
    );

    let reply = agent.put(&format!("/v1/client/allocation/{live}/gc"), "");
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("not terminal"), "{}", reply.text);
    assert!(task_dir(&agent, &live).exists());

    let dir = agent.data_dir().join("alloc").join(&stopped);
    assert!(dir.exists());
    let reply = agent.get(&format!("/v1/client/allocation/{stopped}/gc"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!dir.exists());
    let reply = agent.get(&format!("/v1/client/allocation/{stopped}/stats"));
    assert_eq!(reply.status, 404, "{}", reply.text);

    register(&agent, &shell_job("once", "batch", 1, "echo done", &marker));
    let done = wait_allocs(&agent, "once", "the batch allocation complete", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    let batch_dir = agent
        .data_dir()
        .join("alloc")
        .join(done[0]["ID"].as_str().unwrap_or_default());
    assert!(batch_dir.exists());
    let reply = agent.post("/v1/client/gc", "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!batch_dir.exists());
    assert!(task_dir(&agent, &live).exists(), "a live allocation stays");

    let stats = agent.get("/v1/client/stats");
    assert_eq!(stats.status, 200, "{}", stats.text);
    let stats = stats.json();
    assert!(
        stats["Memory"]["Total"]
            .as_u64()
            .is_some_and(|total| total > 0),
        "{stats}"
    );
    let cpus = stats["CPU"].as_array().cloned().unwrap_or_default();
    assert!(!cpus.is_empty(), "{stats}");
    assert!(cpus[0]["CPU"]
        .as_str()
        .is_some_and(|name| name.starts_with("cpu")));
    assert!(cpus[0]["Idle"].is_number());
    assert!(stats["AllocDirStats"]["Size"]
        .as_u64()
        .is_some_and(|size| size > 0));
    assert!(stats["Uptime"].as_u64().is_some_and(|up| up > 0));
}

#[test]
fn a_server_only_agent_relays_to_the_client_agent() {
    let marker = marker("client-relay");
    let _reaper = ProcessReaper(marker.clone());
    let server = Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "");
    let client_hcl = "plugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n";
    let _client = Agent::start_with_data_dir(
        &[
            "-client",
            "-node",
            "worker",
            "-servers",
            &server.rpc_address(),
        ],
        client_hcl,
    );
    let id = run_service(&server, "far", TRAPS_USR1, &marker);
    let node_id = alloc(&server, &id)["NodeID"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let stats = server.get(&format!("/v1/client/allocation/{id}/stats"));
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert!(
        stats.json()["Tasks"]["t"]["ResourceUsage"]["MemoryStats"]["RSS"]
            .as_u64()
            .is_some_and(|rss| rss > 0)
    );
    let reply = server.post(
        &format!("/v1/client/allocation/{id}/signal"),
        r#"{"Signal":"SIGUSR1"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("the signal recorded", || {
        events(&alloc(&server, &id))
            .iter()
            .any(|event| event["Type"] == "Signaling")
    });
    let reply = server.post(
        &format!("/v1/client/allocation/{id}/signal"),
        r#"{"Signal":"SIGNOPE"}"#,
    );
    assert_eq!(reply.status, 400, "{}", reply.text);

    let reply = server.get("/v1/client/stats");
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (400, "No local Node and node_id not provided")
    );
    let reply = server.get(&format!("/v1/client/stats?node_id={node_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["Memory"]["Total"]
        .as_u64()
        .is_some_and(|t| t > 0));
}

#[test]
fn the_endpoints_check_the_namespace_and_node_capabilities() {
    let marker = marker("client-acl");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(
        &[],
        &format!("{SERVER_AND_CLIENT}acl {{\n  enabled = true\n}}\n"),
    );
    let management = common::acl::bootstrap(&agent);
    let job = shell_job("guarded", "service", 1, "sleep 600 & wait", &marker);
    let reply = agent.request_with_token(
        "PUT",
        "/v1/jobs",
        Some(&management),
        &json!({"Job": job}).to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let running = || {
        let reply =
            agent.request_with_token("GET", "/v1/job/guarded/allocations", Some(&management), "");
        let list = reply.json();
        list.as_array()
            .and_then(|allocs| allocs.iter().find(|a| a["ClientStatus"] == "running"))
            .and_then(|alloc| alloc["ID"].as_str())
            .map(str::to_string)
    };
    eventually("a running allocation", || running().is_some());
    let id = running().unwrap_or_default();
    common::acl::create_policy(
        &agent,
        &management,
        "reader",
        "namespace \"default\" {\n  capabilities = [\"read-job\"]\n}\n",
    );
    let reader = common::acl::create_token(&agent, &management, &["reader"]);
    let reader = reader["SecretID"].as_str().unwrap_or_default();
    let call = |method: &str, path: &str, token: Option<&str>, body: &str| {
        agent.request_with_token(method, path, token, body).status
    };
    let stats = format!("/v1/client/allocation/{id}/stats");
    let signal = format!("/v1/client/allocation/{id}/signal");
    let gc = format!("/v1/client/allocation/{id}/gc");
    let body = r#"{"Signal":"SIGHUP"}"#;
    assert_eq!(call("GET", &stats, None, ""), 403);
    assert_eq!(call("GET", &stats, Some(reader), ""), 200);
    assert_eq!(call("PUT", &signal, Some(reader), body), 403);
    assert_eq!(call("PUT", &gc, Some(reader), ""), 403);
    assert_eq!(call("GET", "/v1/client/stats", Some(reader), ""), 403);
    assert_eq!(call("PUT", "/v1/client/gc", Some(reader), ""), 403);
    assert_eq!(call("GET", "/v1/client/stats", Some(&management), ""), 200);
    assert_eq!(call("PUT", &signal, Some(&management), body), 200);
}
