//! A real network partition: three server containers on a private Docker
//! network, the leader's network cut with `docker network disconnect`.
//! The image is built locally by `scripts/build-test-image.sh` (the test
//! command does it); nothing is pulled. Traffic stays on this machine: the
//! network is created `--internal`.

mod common;

use common::docker::docker;
use std::time::{Duration, Instant};

const IMAGE: &str = "caravan-test:latest";

fn docker_ready() -> bool {
    common::docker::ready(IMAGE, "the partition test")
}

/// Removes the containers and the network, whatever happens.
struct Testbed {
    network: String,
    containers: Vec<String>,
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

impl Testbed {
    /// `GET` (or `POST` with a body) against a container's own API, with
    /// the busybox wget inside the image.
    fn http(&self, container: &str, path: &str, body: Option<&str>) -> Result<String, String> {
        let url = format!("http://127.0.0.1:4646{path}");
        // busybox's own timeout flag crashes in this image; bound the call
        // from outside instead.
        let mut args = vec![
            "exec",
            container,
            "/bin/busybox",
            "timeout",
            "30",
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
        ];
        if let Some(body) = body {
            args.push("--post-data");
            args.push(body);
        }
        args.push(&url);
        docker(&args)
    }

    fn leader_of(&self, container: &str) -> String {
        self.http(container, "/v1/status/leader?stale", None)
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }

    fn ip_of(&self, container: &str) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ])
        .unwrap_or_default()
    }
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn number(json: &serde_json::Value, key: &str) -> u64 {
    json["stats"]["raft"][key]
        .as_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_majority_keeps_working_across_a_partition_and_the_logs_agree_after() {
    if !docker_ready() {
        return;
    }
    let tag = format!("caravan-part-{}", std::process::id());
    // An explicit subnet lets the cut-off container come back with its IP.
    let mut network = None;
    for third in 0..32u32 {
        let octet = (std::process::id() + third * 7) % 200 + 20;
        let subnet = format!("10.213.{octet}.0/24");
        if docker(&["network", "create", "--internal", "--subnet", &subnet, &tag]).is_ok() {
            network = Some(tag.clone());
            break;
        }
    }
    let network = network.expect("could not create a private Docker network");
    let mut bed = Testbed {
        network: network.clone(),
        containers: Vec::new(),
    };
    let names: Vec<String> = (1..=3).map(|n| format!("{tag}-s{n}")).collect();
    for (n, name) in names.iter().enumerate() {
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--network".into(),
            network.clone(),
            IMAGE.into(),
            "agent".into(),
            "-server".into(),
            "-node".into(),
            format!("s{}", n + 1),
            "-bootstrap-expect".into(),
            "3".into(),
            "-data-dir".into(),
            "/data".into(),
            "-bind".into(),
            "0.0.0.0".into(),
        ];
        for peer in names.iter().filter(|peer| *peer != name) {
            args.push("-retry-join".into());
            args.push(peer.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).expect("start a server container");
        bed.containers.push(name.clone());
    }

    // One leader, agreed by all three.
    let leader_addr = eventually("the cluster to form", || {
        let leaders: Vec<String> = names.iter().map(|name| bed.leader_of(name)).collect();
        (!leaders[0].is_empty() && leaders.iter().all(|l| l == &leaders[0]))
            .then(|| leaders[0].clone())
    });
    let leader = names
        .iter()
        .find(|name| leader_addr.starts_with(&format!("{}:", bed.ip_of(name))))
        .expect("the leader is one of the containers")
        .clone();
    let leader_ip = bed.ip_of(&leader);
    let followers: Vec<String> = names.iter().filter(|n| **n != leader).cloned().collect();
    bed.http(
        &leader,
        "/v1/operator/scheduler/configuration",
        Some(r#"{"SchedulerAlgorithm":"spread"}"#),
    )
    .expect("a write before the partition");

    // Cut the leader off.
    docker(&["network", "disconnect", &network, &leader]).expect("disconnect the leader");
    let new_leader_addr = eventually("the majority to elect a new leader", || {
        let seen = bed.leader_of(&followers[0]);
        (!seen.is_empty() && seen != leader_addr && seen == bed.leader_of(&followers[1]))
            .then_some(seen)
    });
    assert!(
        followers
            .iter()
            .any(|name| new_leader_addr.starts_with(&format!("{}:", bed.ip_of(name)))),
        "the new leader is a follower"
    );
    // The majority accepts writes, through either of its servers.
    for name in &followers {
        bed.http(
            name,
            "/v1/operator/scheduler/configuration",
            Some(r#"{"SchedulerAlgorithm":"binpack","MemoryOversubscriptionEnabled":true}"#),
        )
        .unwrap_or_else(|error| panic!("the majority refused a write on {name}: {error}"));
    }
    // The minority refuses them.
    let refused = bed.http(
        &leader,
        "/v1/operator/scheduler/configuration",
        Some(r#"{"SchedulerAlgorithm":"spread"}"#),
    );
    assert!(
        refused.is_err(),
        "the cut-off server accepted a write: {refused:?}"
    );

    // Heal: the old leader comes back with its address.
    docker(&["network", "connect", "--ip", &leader_ip, &network, &leader]).expect("reconnect");
    let final_leader = eventually("one leader after healing", || {
        let leaders: Vec<String> = names.iter().map(|name| bed.leader_of(name)).collect();
        (!leaders[0].is_empty() && leaders.iter().all(|l| l == &leaders[0]))
            .then(|| leaders[0].clone())
    });
    assert_ne!(final_leader, "");
    // The logs agree: every server reaches the same last index and state.
    eventually("the logs to agree", || {
        let selves: Vec<serde_json::Value> = names
            .iter()
            .filter_map(|name| bed.http(name, "/v1/agent/self", None).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect();
        let configs: Vec<String> = names
            .iter()
            .filter_map(|name| {
                bed.http(name, "/v1/operator/scheduler/configuration?stale", None)
                    .ok()
            })
            .collect();
        let indexes: Vec<u64> = selves.iter().map(|s| number(s, "last_log_index")).collect();
        let applied: Vec<u64> = selves.iter().map(|s| number(s, "applied_index")).collect();
        let same_config = configs.len() == 3
            && configs
                .iter()
                .all(|c| c.contains("\"MemoryOversubscriptionEnabled\":true"));
        (selves.len() == 3
            && indexes.iter().all(|i| *i == indexes[0] && *i > 0)
            && applied.iter().all(|a| *a == applied[0])
            && same_config)
            .then_some(())
    });
    drop(bed);
}
