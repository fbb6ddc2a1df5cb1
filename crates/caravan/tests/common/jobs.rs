//! Helpers for tests that run real jobs: registering them, waiting for
//! their allocations, and finding the processes they started.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Agent;

/// The HCL that makes an agent with a data directory a one-node cluster
/// whose client runs raw_exec tasks.
pub const SERVER_AND_CLIENT: &str = "server {\n  enabled = true\n  bootstrap_expect = 1\n}\nclient {\n  enabled = true\n}\nplugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n";

/// A job of `job_type` with one group of `count` running `script` under
/// `sh -c` with raw_exec; every process it starts carries `marker` in its
/// environment ([`processes_with`]).
pub fn shell_job(id: &str, job_type: &str, count: u32, script: &str, marker: &str) -> Value {
    json!({
        "ID": id,
        "Type": job_type,
        "TaskGroups": [{
            "Name": "g",
            "Count": count,
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "KillTimeout": 2_000_000_000u64,
                "Env": {"CARAVAN_TEST_MARKER": marker},
                "Config": {"command": "/bin/sh", "args": ["-c", script]}
            }]
        }]
    })
}

/// Registers `job` through the SDK; the register response as JSON.
pub fn register(agent: &Agent, job: &Value) -> Value {
    let client = agent.sdk();
    let registered = super::block_on(client.jobs().register_value(
        job,
        &Default::default(),
        &Default::default(),
    ))
    .unwrap_or_else(|error| panic!("registering {}: {error}", job["ID"]));
    serde_json::to_value(registered).unwrap_or_default()
}

/// The job's allocations (stubs, as the API's JSON), through the SDK.
pub fn allocs(agent: &Agent, job_id: &str) -> Vec<Value> {
    let client = agent.sdk();
    let path = format!("/v1/job/{}/allocations", caravan_sdk::jobs::escape(job_id));
    let (allocs, _): (Vec<Value>, _) = super::block_on(client.get(&path, &[], &Default::default()))
        .unwrap_or_else(|error| panic!("allocations of {job_id}: {error}"));
    allocs
}

/// Waits (up to a minute) until `check` holds for the job's allocations,
/// returning them; panics with the allocations and the log otherwise.
pub fn wait_allocs(
    agent: &Agent,
    job_id: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = allocs(agent, job_id);
        if check(&current) {
            return current;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; allocations: {}\nevaluations: {}\nlog:\n{}",
                serde_json::to_string_pretty(&current).unwrap_or_default(),
                agent.get(&format!("/v1/job/{job_id}/evaluations")).text,
                agent.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn with_status<'a>(allocs: &'a [Value], status: &str) -> Vec<&'a Value> {
    allocs
        .iter()
        .filter(|alloc| alloc["ClientStatus"] == status)
        .collect()
}

/// The types of a task's events, in order.
pub fn event_types(alloc: &Value, task: &str) -> Vec<String> {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|event| event["Type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of live processes whose environment carries `marker` (what
/// [`shell_job`] sets): a task's processes and everything they started.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let me = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let wanted = format!("CARAVAN_TEST_MARKER={marker}");
        let carries = environ
            .split(|byte| *byte == 0)
            .any(|entry| entry == wanted.as_bytes());
        if carries && !is_zombie(pid) {
            found.push(pid);
        }
    }
    found
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Waits (up to 30 s) until no process carries `marker`.
pub fn wait_no_processes(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_with(marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left behind: {:?}",
            processes_with(marker)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills every process carrying `marker` when dropped, so a failing test
/// leaves nothing running.
pub struct ProcessReaper(pub String);

impl Drop for ProcessReaper {
    fn drop(&mut self) {
        for pid in processes_with(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A marker unique to this test run, for the processes it starts.
pub fn marker(name: &str) -> String {
    format!("caravan-test-{name}-{}", std::process::id())
}
