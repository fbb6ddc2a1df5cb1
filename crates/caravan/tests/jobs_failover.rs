//! Evaluations survive a leader failover: jobs registered on a
//! three-server cluster right before its leader is SIGKILLed are all
//! scheduled by the next leader, each exactly once (no evaluation lost,
//! none left pending, no group placed twice).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Agent, BINARY};
use serde_json::{json, Value};

const JOBS: usize = 30;
const COUNT: usize = 3;
const NODES: usize = 3;

/// `caravan node-sim`: fake nodes that register and heartbeat through
/// every server (failing over as real clients do), killed when dropped.
struct NodeSim(Child);

impl NodeSim {
    fn start(cluster: &Cluster) -> Self {
        let servers: Vec<String> = cluster.servers.iter().map(Agent::rpc_address).collect();
        let child = Command::new(BINARY)
            .args([
                "node-sim",
                "-servers",
                &servers.join(","),
                "-count",
                &NODES.to_string(),
                "-duration",
                "600s",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node-sim");
        let sim = NodeSim(child);
        let leader = cluster.leader();
        cluster.eventually("the simulated nodes to be ready", || {
            ready_nodes(&cluster.servers[leader]) == NODES
        });
        sim
    }
}

impl Drop for NodeSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ready_nodes(server: &Agent) -> usize {
    let reply = server.get("/v1/nodes?stale");
    if reply.status != 200 {
        return 0;
    }
    reply.json().as_array().map_or(0, |nodes| {
        nodes
            .iter()
            .filter(|node| node["Status"] == "ready")
            .count()
    })
}

/// A service job of one group of `COUNT` small raw_exec tasks (the fake
/// nodes report raw_exec and never run anything).
fn job(id: &str) -> String {
    json!({"Job": {
        "ID": id,
        "Type": "service",
        "TaskGroups": [{
            "Name": "g",
            "Count": COUNT,
            "EphemeralDisk": {"SizeMB": 150},
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["600"]},
                "Resources": {"CPU": 10, "MemoryMB": 16}
            }]
        }]
    }})
    .to_string()
}

fn job_id(n: usize) -> String {
    format!("failover-{n:02}")
}

fn get_array(server: &Agent, path: &str) -> Vec<Value> {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
    reply.json().as_array().cloned().unwrap_or_default()
}

/// What is wrong with one job's evaluations and allocations, if anything:
/// it must have evaluations, all complete, and exactly `COUNT` allocations
/// (`g[0]`..`g[COUNT-1]`, each once) that the servers want running.
fn job_problem(server: &Agent, id: &str) -> Option<String> {
    let evals = get_array(server, &format!("/v1/job/{id}/evaluations"));
    let allocs = get_array(server, &format!("/v1/job/{id}/allocations"));
    let statuses: Vec<&str> = evals
        .iter()
        .map(|eval| eval["Status"].as_str().unwrap_or("?"))
        .collect();
    // Canceled: made redundant by a newer evaluation of the job; failed
    // (planning gave up) or anything still open is a problem.
    let finished = |status: &&str| matches!(*status, "complete" | "canceled");
    if !statuses.contains(&"complete") || !statuses.iter().all(finished) {
        return Some(format!("{id}: evaluation statuses {statuses:?}"));
    }
    let mut names: Vec<String> = allocs
        .iter()
        .map(|alloc| {
            format!(
                "{} ({})",
                alloc["Name"].as_str().unwrap_or("?"),
                alloc["DesiredStatus"].as_str().unwrap_or("?")
            )
        })
        .collect();
    names.sort();
    let wanted: Vec<String> = (0..COUNT).map(|i| format!("{id}.g[{i}] (run)")).collect();
    (names != wanted).then(|| format!("{id}: allocations {names:?}, wanted {wanted:?}"))
}

fn problems(server: &Agent, jobs: std::ops::Range<usize>) -> Vec<String> {
    jobs.filter_map(|n| job_problem(server, &job_id(n)))
        .collect()
}

/// Registers jobs `jobs` straight to the leader, all at once (`burst`:
/// evaluations pile up faster than its workers take them) or one after
/// the other (the leader schedules while they arrive, so at the end some
/// are complete, some being planned, some pending), then SIGKILLs the
/// leader as soon as the last registration is acknowledged. Returns the
/// killed server and what a survivor held then (nothing commits until a
/// new leader is elected), as `(complete, pending)`.
fn register_then_kill_leader(
    cluster: &mut Cluster,
    jobs: std::ops::Range<usize>,
    burst: bool,
) -> (usize, usize, usize) {
    let old = cluster.leader();
    let leader = &cluster.servers[old];
    let register = |n: usize| {
        let reply = leader.put("/v1/jobs", &job(&job_id(n)));
        assert_eq!(reply.status, 200, "{}", reply.text);
    };
    if burst {
        std::thread::scope(|scope| {
            let threads: Vec<_> = jobs.map(|n| scope.spawn(move || register(n))).collect();
            for thread in threads {
                thread.join().expect("registration thread");
            }
        });
    } else {
        jobs.for_each(register);
    }
    cluster.servers[old].kill9();
    let survivor = (0..cluster.servers.len())
        .find(|i| *i != old && cluster.servers[*i].is_running())
        .expect("a survivor");
    let frozen = get_array(&cluster.servers[survivor], "/v1/evaluations?stale");
    let count = |status: &str| frozen.iter().filter(|e| e["Status"] == status).count();
    (old, count("complete"), count("pending"))
}

/// Waits until jobs `0..registered` are all fully scheduled by the new
/// leader; returns its index.
fn wait_scheduled(cluster: &Cluster, old: usize, registered: usize, at_kill: &str) -> usize {
    let leader = cluster.leader();
    assert_ne!(leader, old, "the killed server still leads");
    let server = &cluster.servers[leader];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = problems(server, 0..registered);
        if left.is_empty() {
            return leader;
        }
        if Instant::now() > deadline {
            panic!(
                "after the failover ({at_kill}), {} of {registered} jobs are not fully \
                 scheduled:\n{}\nnodes: {}\nnew leader's log:\n{}",
                left.len(),
                left.join("\n"),
                server.get("/v1/nodes").text,
                server.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_leader_failover_with_evaluations_pending_loses_none_and_places_none_twice() {
    let mut cluster = Cluster::start(3, "");
    let _nodes = NodeSim::start(&cluster);

    // Round 1: a burst, the leader killed with its evaluations pending.
    let (old, complete, pending) = register_then_kill_leader(&mut cluster, 0..JOBS, true);
    let at_kill = format!("{complete} evaluations complete, {pending} pending at the kill");
    eprintln!("round 1: {at_kill}");
    wait_scheduled(&cluster, old, JOBS, &at_kill);

    // The killed server comes back; round 2: a stream, the leader killed
    // while it schedules.
    cluster.servers[old].restart_unready();
    cluster.wait_for_voters(3);
    let (old, complete, pending) = register_then_kill_leader(&mut cluster, JOBS..2 * JOBS, false);
    let at_kill = format!("{complete} evaluations complete, {pending} pending at the kill");
    eprintln!("round 2: {at_kill}");
    let leader = wait_scheduled(&cluster, old, 2 * JOBS, &at_kill);
    let server = &cluster.servers[leader];

    // No evaluation anywhere is left behind (pending, blocked or failed),
    // and none but the registrations' own was needed.
    let evals = get_array(server, "/v1/evaluations");
    let described: Vec<String> = evals
        .iter()
        .map(|eval| {
            format!(
                "{} {} {}",
                eval["JobID"], eval["Status"], eval["TriggeredBy"]
            )
        })
        .collect();
    assert!(
        evals
            .iter()
            .all(|eval| eval["Status"] == "complete" || eval["Status"] == "canceled"),
        "evaluations not finished: {described:?}"
    );
    assert_eq!(
        evals.len(),
        2 * JOBS,
        "one evaluation per job expected: {described:?}"
    );
    // Every group placed exactly once in all, and the nodes stayed ready
    // throughout (no allocation was lost and replaced, which would hide or
    // explain a double placement).
    assert_eq!(get_array(server, "/v1/allocations").len(), 2 * JOBS * COUNT);
    assert_eq!(
        ready_nodes(server),
        NODES,
        "{}",
        server.get("/v1/nodes").text
    );
}
