//! Host volumes against a real agent: the client's `host_volume` blocks
//! on its node, placement only where a group's `volume` can be served, a
//! raw_exec task reaching the volume through its task directory (and
//! refusing a read-only one it could not enforce), and the register-time
//! checks of `volume` and `volume_mount`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::jobs::{marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::Agent;
use serde_json::{json, Value};

/// One node serving raw_exec tasks, with a writable host volume `shared`
/// at `shared` and a read-only one, `frozen`, at `frozen`.
fn agent(shared: &Path, frozen: &Path) -> Agent {
    let hcl = format!(
        "server {{\n  enabled = true\n  bootstrap_expect = 1\n}}\n\
         client {{\n  enabled = true\n\
         \x20 host_volume \"shared\" {{\n    path = {shared:?}\n    read_only = false\n  }}\n\
         \x20 host_volume \"frozen\" {{\n    path = {frozen:?}\n    read_only = true\n  }}\n}}\n\
         plugin \"raw_exec\" {{\n  config {{\n    enabled = true\n  }}\n}}\n",
        shared = shared.display().to_string(),
        frozen = frozen.display().to_string(),
    );
    Agent::start_with_data_dir(&[], &hcl)
}

/// `shell_job` whose group has `volume "data"` of `source` and whose task
/// mounts it at `/data`.
fn volume_job(id: &str, source: &str, read_only: bool, script: &str, marker: &str) -> Value {
    let mut job = shell_job(id, "service", 1, script, marker);
    job["TaskGroups"][0]["Volumes"] = json!({
        "data": {"Name": "data", "Type": "host", "Source": source, "ReadOnly": read_only}
    });
    job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] =
        json!([{"Volume": "data", "Destination": "/data", "ReadOnly": false}]);
    job
}

/// Waits (up to a minute) for `path` to hold something, returning it.
fn wait_for_file(agent: &Agent, path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {} in time; log:\n{}",
            path.display(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The ID of the agent's node, once it has registered (up to a minute).
fn wait_for_node(agent: &Agent) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes = agent.get("/v1/nodes").json();
        if let Some(id) = nodes[0]["ID"].as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no node; log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_host_volume_written_by_one_allocation_is_read_by_its_replacement() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("host-volume");
    let _reaper = ProcessReaper(marker.clone());
    let (shared, frozen) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let agent = agent(shared.path(), frozen.path());

    // The node offers its volumes.
    let node_id = wait_for_node(&agent);
    let node = agent.get(&format!("/v1/node/{node_id}")).json();
    let volumes = &node["HostVolumes"];
    assert_eq!(volumes["shared"]["Name"], "shared", "{node}");
    assert_eq!(
        volumes["shared"]["Path"],
        shared.path().display().to_string()
    );
    assert_eq!(volumes["shared"]["ReadOnly"], false);
    assert_eq!(volumes["frozen"]["ReadOnly"], true);

    // The first allocation writes its ID; a later one copies what it
    // finds into a file named after itself. `data` is relative to the
    // task's working directory, its task directory.
    let script = "if [ -f data/written ]; then cp data/written \"data/read-by-$NOMAD_ALLOC_ID\"; \
                  else echo \"$NOMAD_ALLOC_ID\" > data/written; fi; sleep 600 & wait";
    let job = volume_job("vol", "shared", false, script, &marker);
    register(&agent, &job);
    let allocs = wait_allocs(&agent, "vol", "a running allocation", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let first = allocs[0]["ID"].as_str().unwrap().to_string();
    let written = wait_for_file(&agent, &shared.path().join("written"));
    assert_eq!(written.trim(), first);

    // A changed task is a destructive update: a new allocation replaces
    // the first one on the same volume.
    let mut updated = job.clone();
    updated["TaskGroups"][0]["Tasks"][0]["Env"]["VERSION"] = json!("2");
    register(&agent, &updated);
    let allocs = wait_allocs(&agent, "vol", "the replacement running", |allocs| {
        allocs
            .iter()
            .any(|alloc| alloc["ID"] != first.as_str() && alloc["ClientStatus"] == "running")
    });
    let second = allocs
        .iter()
        .find(|alloc| alloc["ID"] != first.as_str() && alloc["ClientStatus"] == "running")
        .and_then(|alloc| alloc["ID"].as_str())
        .unwrap()
        .to_string();
    let read = wait_for_file(&agent, &shared.path().join(format!("read-by-{second}")));
    assert_eq!(read.trim(), first);
    let alloc_dir = |id: &str| agent.data_dir().join("alloc").join(id);
    let link = std::fs::read_link(alloc_dir(&second).join("t/data")).unwrap();
    assert_eq!(link, shared.path());

    // Collecting the first allocation removes its directory, link and
    // all, but never what the link points at.
    wait_allocs(&agent, "vol", "the first allocation stopped", |allocs| {
        allocs
            .iter()
            .any(|alloc| alloc["ID"] == first.as_str() && alloc["ClientStatus"] == "complete")
    });
    let reply = agent.put(&format!("/v1/client/allocation/{first}/gc"), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    while alloc_dir(&first).exists() {
        assert!(
            Instant::now() < deadline,
            "the first allocation was not collected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(shared.path().join("written"))
            .unwrap()
            .trim(),
        first
    );
}

#[test]
fn a_volume_no_node_can_serve_blocks_the_job() {
    // Declared first, dropped last: after the agent, so nothing restarts
    // what it kills.
    let marker = marker("host-volume-blocked");
    let _reaper = ProcessReaper(marker.clone());
    let (shared, frozen) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let agent = agent(shared.path(), frozen.path());
    wait_for_node(&agent);
    // Unknown on the node, and writable on a read-only volume.
    for (id, source, read_only) in [("nowhere", "nowhere", false), ("thaw", "frozen", false)] {
        register(
            &agent,
            &volume_job(id, source, read_only, "sleep 600", &marker),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let blocked = loop {
            let evals = agent.get(&format!("/v1/job/{id}/evaluations")).json();
            let found = evals
                .as_array()
                .into_iter()
                .flatten()
                .find(|eval| eval["Status"] == "blocked")
                .cloned();
            if let Some(eval) = found {
                break eval;
            }
            assert!(
                Instant::now() < deadline,
                "no blocked eval for {id}: {evals}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let filtered = &blocked["FailedTGAllocs"]["g"]["ConstraintFiltered"];
        assert_eq!(filtered["missing compatible host volumes"], 1, "{blocked}");
        let allocs = agent.get(&format!("/v1/job/{id}/allocations")).json();
        assert_eq!(allocs, json!([]));
        assert_eq!(
            agent.get(&format!("/v1/job/{id}")).json()["Status"],
            "pending"
        );
    }
    // A read-only request on the read-only volume places; raw_exec then
    // refuses it, having nothing to keep the task from writing it with.
    let mut reader = volume_job("reader", "frozen", true, "sleep 600", &marker);
    reader["TaskGroups"][0]["RestartPolicy"] = json!({
        "Attempts": 0, "Interval": 60_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"
    });
    reader["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
    register(&agent, &reader);
    let allocs = wait_allocs(&agent, "reader", "a failed reader", |allocs| {
        with_status(allocs, "failed").len() == 1
    });
    let events = allocs[0]["TaskStates"]["t"]["Events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failure = events
        .iter()
        .find(|event| event["Type"] == "Driver Failure")
        .unwrap_or_else(|| panic!("no Driver Failure event: {events:?}"));
    let error = failure["DriverError"].as_str().unwrap_or_default();
    assert!(
        error.contains("raw_exec cannot mount host volume")
            && error.contains("read-only: it has no filesystem isolation"),
        "{failure}"
    );
}

#[test]
fn undefined_volumes_and_empty_sources_are_refused_at_register() {
    let agent = Agent::dev();
    let mut job = volume_job("bad", "shared", false, "true", "unused");
    job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] =
        json!([{"Volume": "nope", "Destination": "/data"}]);
    job["TaskGroups"][0]["Volumes"]["data"]["Source"] = json!("");
    let reply = agent.put("/v1/jobs", &json!({"Job": job}).to_string());
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply
            .text
            .contains("Task t validation failed: 1 error occurred:\n\t* Volume Mount (0) references undefined volume nope"),
        "{}",
        reply.text
    );
    assert!(
        reply
            .text
            .contains("Task group volume validation for data failed: 1 error occurred:\n\t* volume has an empty source"),
        "{}",
        reply.text
    );
    assert_eq!(agent.get("/v1/job/bad").status, 404);
}
