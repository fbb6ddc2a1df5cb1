//! Several server processes on this machine forming one cluster.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_ports, Agent, Reply};

/// A cluster of `caravan agent -server` processes that find each other by
/// gossip (`retry_join`) and bootstrap with `bootstrap_expect`.
pub struct Cluster {
    pub servers: Vec<Agent>,
    pub serf_ports: Vec<u16>,
    pub expect: usize,
    pub extra_hcl: String,
}

/// Test timings: quick stabilization, a forgiving contact threshold (the
/// tests run many processes on two cores).
pub const TEST_AUTOPILOT: &str =
    "autopilot {\n  server_stabilization_time = \"2s\"\n  last_contact_threshold = \"1s\"\n}\n";

impl Cluster {
    /// Starts `count` servers expecting `count` voters.
    pub fn start(count: usize, extra_hcl: &str) -> Self {
        let ports: Vec<(u16, u16, u16)> = (0..count).map(|_| free_ports()).collect();
        let serf_ports: Vec<u16> = ports.iter().map(|p| p.2).collect();
        let mut cluster = Self {
            servers: Vec::new(),
            serf_ports,
            expect: count,
            extra_hcl: extra_hcl.to_string(),
        };
        // Start in reverse order: formation must not depend on who is first.
        let mut servers: Vec<Agent> = ports
            .iter()
            .rev()
            .map(|ports| Agent::launch_server_on(*ports, &cluster.server_hcl(count)))
            .collect();
        servers.reverse();
        cluster.servers = servers;
        for server in &cluster.servers {
            server.wait_answering();
        }
        cluster.wait_for_voters(count);
        cluster
    }

    fn server_hcl(&self, expect: usize) -> String {
        let join: Vec<String> = self
            .serf_ports
            .iter()
            .map(|port| format!("\"127.0.0.1:{port}\""))
            .collect();
        format!(
            "server {{\n  bootstrap_expect = {expect}\n  server_join {{\n    retry_join = [{}]\n  }}\n}}\n{TEST_AUTOPILOT}{}",
            join.join(", "),
            self.extra_hcl
        )
    }

    /// Starts one more server that joins the cluster by gossip.
    pub fn add_server(&mut self) -> usize {
        let ports = free_ports();
        let hcl = self.server_hcl(self.expect);
        self.serf_ports.push(ports.2);
        let agent = Agent::launch_server_on(ports, &hcl);
        agent.wait_answering();
        self.servers.push(agent);
        self.servers.len() - 1
    }

    /// The raft configuration as one live server sees it (stale read).
    pub fn raft_configuration(&self, from: usize) -> Value {
        self.servers[from]
            .get("/v1/operator/raft/configuration?stale")
            .json()
    }

    /// Index of the server that leads, as the live servers agree.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(index) = self.try_leader() {
                return index;
            }
            assert!(Instant::now() < deadline, "no agreed leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_leader(&self) -> Option<usize> {
        let mut seen = None;
        for server in self.servers.iter().filter(|s| s.is_running()) {
            let reply = server.get("/v1/status/leader?stale");
            let leader = reply.json().as_str()?.to_string();
            if leader.is_empty() || seen.as_ref().is_some_and(|s| s != &leader) {
                return None;
            }
            seen = Some(leader);
        }
        let leader = seen?;
        self.servers
            .iter()
            .position(|s| s.is_running() && s.rpc_address() == leader)
    }

    /// A running server that is not the leader.
    pub fn follower(&self) -> usize {
        let leader = self.leader();
        (0..self.servers.len())
            .find(|i| *i != leader && self.servers[*i].is_running())
            .expect("a follower")
    }

    /// Waits until the Raft configuration has `count` voters everywhere.
    pub fn wait_for_voters(&self, count: usize) {
        self.eventually(&format!("{count} voters"), || {
            self.servers
                .iter()
                .filter(|s| s.is_running())
                .all(|server| {
                    let reply = server.get("/v1/operator/raft/configuration?stale");
                    match reply.status {
                        200 => reply.json()["Servers"].as_array().is_some_and(|servers| {
                            servers.iter().filter(|s| s["Voter"] == true).count() == count
                        }),
                        // With ACLs on and no token yet, count the peers instead.
                        403 => {
                            let peers = server.get("/v1/status/peers?stale");
                            peers.status == 200
                                && peers.json().as_array().is_some_and(|p| p.len() == count)
                        }
                        _ => false,
                    }
                })
                && self.try_leader().is_some()
        });
    }

    /// Polls `check` until it holds (60 s at most).
    pub fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        eventually(what, check);
    }

    pub fn get(&self, index: usize, path: &str) -> Reply {
        self.servers[index].get(path)
    }
}

/// Polls `check` until it holds (60 s at most).
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
