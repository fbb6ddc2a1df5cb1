//! The client's periodic garbage collection: past `gc_max_allocs`, the
//! oldest terminal allocations lose their directories, while live ones
//! and the newest terminal ones stay.

mod common;

use std::time::{Duration, Instant};

use common::jobs::{marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::Agent;

const HCL: &str = "server {\n  enabled = true\n  bootstrap_expect = 1\n}\nclient {\n  enabled = true\n  gc_max_allocs = 2\n  gc_interval = \"500ms\"\n  gc_disk_usage_threshold = 100\n  gc_inode_usage_threshold = 100\n}\nplugin \"raw_exec\" {\n  config {\n    enabled = true\n  }\n}\n";

#[test]
fn past_the_limit_the_oldest_terminal_allocations_are_collected() {
    let marker = marker("client-gc");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], HCL);
    let config = agent.get("/v1/agent/self").json();
    assert_eq!(config["config"]["Client"]["GCMaxAllocs"], 2);

    register(
        &agent,
        &shell_job("live", "service", 1, "sleep 600 & wait", &marker),
    );
    let live = wait_allocs(&agent, "live", "the service running", |allocs| {
        with_status(allocs, "running").len() == 1
    });
    let live_id = live[0]["ID"].as_str().unwrap().to_string();
    // Four short batch jobs, one after the other, so their ends are ordered.
    let mut finished = Vec::new();
    for n in 0..4 {
        let id = format!("short-{n}");
        register(&agent, &shell_job(&id, "batch", 1, "exit 0", &marker));
        let done = wait_allocs(&agent, &id, "the batch run", |allocs| {
            with_status(allocs, "complete").len() == 1
        });
        finished.push(done[0]["ID"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = |id: &str| agent.data_dir().join("alloc").join(id);
    // Five held, limit two: the three oldest terminal ones go.
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished[..3].iter().any(|id| dir(id).exists()) {
        assert!(Instant::now() < deadline, "the oldest were not collected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dir(&live_id).exists(),
        "a live allocation is never collected"
    );
    let present: Vec<String> = std::fs::read_dir(agent.data_dir().join("alloc"))
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        dir(&finished[3]).exists(),
        "the newest terminal one stays: {finished:?} live {live_id}, present {present:?}\n{}",
        agent.log()
    );
    let gone = agent.get(&format!("/v1/client/fs/ls/{}", finished[0]));
    assert_eq!(gone.status, 404, "{}", gone.text);
    let kept = agent.get(&format!("/v1/client/fs/ls/{}", finished[3]));
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert!(agent.log().contains("is over the limit (2)"));
}
