//! Smaller defects found by the security review, each reproduced: an
//! autopilot setting that overflowed its health arithmetic, and writes sent
//! to a follower failing at once during a failover.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::Agent;
use serde_json::json;

#[test]
fn a_huge_max_trailing_logs_does_not_make_the_leader_unhealthy() {
    let agent = Agent::server();
    let body = json!({"MaxTrailingLogs": u64::MAX, "LastContactThreshold": "200ms"});
    let reply = agent.put("/v1/operator/autopilot/configuration", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.text);
    let config = agent.get("/v1/operator/autopilot/configuration").json();
    assert_eq!(config["MaxTrailingLogs"], json!(u64::MAX));
    let mut healthy = false;
    for _ in 0..100 {
        let health = agent.get("/v1/operator/autopilot/health");
        if health.status == 200 && health.json()["Healthy"] == true {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        healthy,
        "{}\n{}",
        agent.get("/v1/operator/autopilot/health").text,
        agent.log()
    );
}

#[test]
fn writes_sent_to_a_follower_are_held_through_a_failover() {
    let mut cluster = Cluster::start(3, "");
    let leader = cluster.leader();
    let follower = cluster.follower();
    let url = cluster.servers[follower].url("/v1/operator/scheduler/configuration");
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, failed, done) = (stop.clone(), failed.clone(), done.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let started = Instant::now();
            let mut texts = Vec::new();
            // Bounded in count and time.
            for index in 0..2_000u32 {
                if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let algorithm = if index % 2 == 0 { "spread" } else { "binpack" };
                let body = json!({"SchedulerAlgorithm": algorithm}).to_string();
                match http.put(&url).body(body).send() {
                    Ok(response) if response.status().is_success() => {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        texts.push(response.text().unwrap_or_default());
                    }
                    Err(error) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        texts.push(error.to_string());
                    }
                }
            }
            texts
        })
    };
    // Let writes flow, then kill the leader under them.
    common::cluster::eventually("writes to flow", || done.load(Ordering::SeqCst) >= 20);
    let before = done.load(Ordering::SeqCst);
    cluster.servers[leader].kill9();
    common::cluster::eventually("writes to resume on the new leader", || {
        done.load(Ordering::SeqCst) >= before + 50
    });
    stop.store(true, Ordering::SeqCst);
    let texts = writer.join().unwrap();
    // The write in flight when the leader died may fail (it may or may not
    // have been applied, so it is not sent again); every write after it is
    // held until the new leader takes it. Before, all of them failed.
    assert!(
        failed.load(Ordering::SeqCst) <= 1,
        "writes failed during the failover: {:?}",
        texts.iter().take(5).collect::<Vec<_>>()
    );
}
