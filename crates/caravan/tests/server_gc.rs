//! Garbage collection on the servers, against the real binary: a forced
//! collection (`PUT /v1/system/gc`) removes finished work and leaves live
//! work; the leader collects on its own past the configured thresholds;
//! only a management token may force it.

mod common;

use std::time::{Duration, Instant};

use common::jobs::{
    marker, register, shell_job, wait_allocs, with_status, ProcessReaper, SERVER_AND_CLIENT,
};
use common::Agent;

/// Waits (bounded) until `path` answers `status`.
fn wait_status(agent: &Agent, path: &str, status: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = agent.get(path);
        if reply.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} answered {} {}\nlog:\n{}",
            reply.status,
            reply.text,
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_forced_collection_removes_finished_work_and_leaves_live_work() {
    let marker = marker("server-gc");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    register(&agent, &shell_job("done", "batch", 2, "exit 0", &marker));
    let finished = wait_allocs(&agent, "done", "the batch job finishing", |allocs| {
        with_status(allocs, "complete").len() == 2
    });
    wait_until_dead(&agent, "done");
    register(
        &agent,
        &shell_job("live", "service", 1, "sleep 600 & wait", &marker),
    );
    let live = wait_allocs(&agent, "live", "the service running", |allocs| {
        with_status(allocs, "running").len() == 1
    });

    // Nomad's method rule and empty answer.
    assert_eq!(agent.get("/v1/system/gc").status, 405);
    let forced = agent.put("/v1/system/gc", "");
    assert_eq!(forced.status, 200, "{}", forced.text);
    assert_eq!(forced.text, "");

    assert_eq!(agent.get("/v1/job/done").status, 404);
    for alloc in &finished {
        let id = alloc["ID"].as_str().unwrap();
        assert_eq!(agent.get(&format!("/v1/allocation/{id}")).status, 404);
    }
    let evals = agent.get("/v1/evaluations").json();
    assert!(
        evals
            .as_array()
            .unwrap()
            .iter()
            .all(|eval| eval["JobID"] == "live"),
        "{evals}"
    );
    let live_id = live[0]["ID"].as_str().unwrap();
    let kept = agent.get(&format!("/v1/allocation/{live_id}")).json();
    assert_eq!(kept["ClientStatus"], "running");
    assert_eq!(agent.get("/v1/job/live").json()["Status"], "running");

    // The client lets go of what the servers no longer hold.
    let dir = |id: &str| agent.data_dir().join("alloc").join(id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished
        .iter()
        .any(|alloc| dir(alloc["ID"].as_str().unwrap()).exists())
    {
        assert!(
            Instant::now() < deadline,
            "the client kept collected allocations"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dir(live_id).exists());

    let reconciled = agent.put("/v1/system/reconcile/summaries", "");
    assert_eq!(reconciled.status, 200, "{}", reconciled.text);
    let summary = agent.get("/v1/job/live/summary").json();
    assert_eq!(summary["Summary"]["g"]["Running"], 1, "{summary}");
}

fn wait_until_dead(agent: &Agent, job_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(&format!("/v1/job/{job_id}")).json()["Status"] != "dead" {
        assert!(Instant::now() < deadline, "{job_id} never became dead");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_leader_collects_on_its_own_past_the_configured_thresholds() {
    let marker = marker("server-gc-periodic");
    let _reaper = ProcessReaper(marker.clone());
    let hcl = SERVER_AND_CLIENT.replace(
        "bootstrap_expect = 1\n",
        "bootstrap_expect = 1\n  job_gc_interval = \"200ms\"\n  job_gc_threshold = \"1s\"\n  \
         eval_gc_threshold = \"1s\"\n  batch_eval_gc_threshold = \"1s\"\n",
    );
    let agent = Agent::start_with_data_dir(&[], &hcl);
    let config = agent.get("/v1/agent/self").json();
    assert_eq!(config["config"]["Server"]["JobGCInterval"], "200ms");
    assert_eq!(config["config"]["Server"]["JobGCThreshold"], "1s");
    assert_eq!(config["config"]["Server"]["NodeGCThreshold"], "24h0m0s");

    register(&agent, &shell_job("once", "batch", 1, "exit 0", &marker));
    wait_allocs(&agent, "once", "the batch job finishing", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    wait_status(&agent, "/v1/job/once", 404, "the finished job collected");
    // The job went with its allocation (and its evaluations: one, or two
    // if it was registered before the node was ready and waited blocked).
    let log = agent.log();
    assert!(
        log.contains("garbage collection: removed jobs=1 evaluations=")
            && log.contains(" allocations=1 "),
        "{log}"
    );
}

#[test]
fn only_a_management_token_forces_a_collection() {
    let agent = Agent::start_with_data_dir(
        &[],
        &format!("{SERVER_AND_CLIENT}acl {{\n  enabled = true\n}}\n"),
    );
    let management = common::acl::bootstrap(&agent);
    common::acl::create_policy(
        &agent,
        &management,
        "ops",
        "operator { policy = \"write\" }",
    );
    let operator = common::acl::create_token(&agent, &management, &["ops"]);
    let operator = operator["SecretID"].as_str().unwrap();
    for path in ["/v1/system/gc", "/v1/system/reconcile/summaries"] {
        let put = |token| common::acl::with_token(&agent, "PUT", path, token, "");
        assert_eq!(put(None).status, 403, "{path}");
        assert_eq!(put(Some(operator)).status, 403, "{path}");
        let allowed = put(Some(&management));
        assert_eq!(allowed.status, 200, "{path}: {}", allowed.text);
    }
}
