//! The leader's heartbeat timers (Nomad's `nomad/heartbeat.go`): one
//! deadline per live node; a node that misses its TTL plus the grace is
//! marked down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use caravan_api_types::node::{NodeEvent, NODE_STATUS_DOWN, SUBSYSTEM_CLUSTER};
use caravan_api_types::sync::lock;
use caravan_state::{Command, State};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::leader::lifecycle::LeaderToken;

/// Nomad's `server` heartbeat settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartbeatConfig {
    pub min_ttl: Duration,
    pub max_per_second: f64,
    pub grace: Duration,
    pub failover_ttl: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(10),
            max_per_second: 50.0,
            grace: Duration::from_secs(10),
            failover_ttl: Duration::from_secs(300),
        }
    }
}

/// Deadlines for every tracked node.
pub struct HeartbeatTracker {
    config: HeartbeatConfig,
    deadlines: Mutex<Timers>,
    changed: Notify,
}

#[derive(Default)]
struct Timers {
    by_node: HashMap<String, Instant>,
    /// When the timer task wakes next, if it has a deadline to wake for.
    /// A heartbeat only moves its node's deadline later, so it wakes the
    /// task only when its deadline comes before that: at 10,000 nodes
    /// every wake scans every deadline, and a wake per heartbeat would be
    /// 10,000 scans while every node re-heartbeats a new leader.
    wake_at: Option<Instant>,
}

impl HeartbeatTracker {
    pub fn new(config: HeartbeatConfig) -> Self {
        Self {
            config,
            deadlines: Mutex::new(Timers::default()),
            changed: Notify::new(),
        }
    }

    fn timers(&self) -> MutexGuard<'_, Timers> {
        lock(&self.deadlines)
    }

    /// The TTL Nomad hands out: `max(min_ttl, nodes / rate)` plus up to as
    /// much again of random jitter, so the cluster's heartbeat rate stays
    /// near `max_heartbeats_per_second`.
    pub fn ttl_for(config: &HeartbeatConfig, tracked: usize) -> Duration {
        let base = Self::base_ttl(config, tracked);
        let jitter = rand::rng().random_range(0.0..1.0);
        base + base.mul_f64(jitter)
    }

    /// The TTL before jitter: `max(min_ttl, nodes / rate)`.
    fn base_ttl(config: &HeartbeatConfig, tracked: usize) -> Duration {
        let spread = Duration::from_secs_f64(tracked as f64 / config.max_per_second.max(0.001));
        config.min_ttl.max(spread)
    }

    /// How long a new leader waits for a node it inherits: the failover
    /// TTL, or longer when the old leader may have given the node a longer
    /// TTL than that. At 10,000 nodes and Nomad's 50 heartbeats/s a node
    /// may hold a 400 s TTL, beyond the 300 s failover default, and one that
    /// heartbeated just before the old leader died is not due back until
    /// then: Nomad's flat failover TTL would mark it down.
    pub fn failover_wait(config: &HeartbeatConfig, tracked: usize) -> Duration {
        let longest_ttl = Self::base_ttl(config, tracked) * 2;
        config.failover_ttl.max(longest_ttl + config.grace)
    }

    /// Restarts `node_id`'s timer; returns the TTL to give the client.
    pub fn reset(&self, node_id: &str) -> Duration {
        let mut timers = self.timers();
        let ttl = Self::ttl_for(&self.config, timers.by_node.len());
        let deadline = Instant::now() + ttl + self.config.grace;
        timers.by_node.insert(node_id.to_string(), deadline);
        let sooner = timers.wake_at.is_none_or(|wake_at| deadline < wake_at);
        drop(timers);
        if sooner {
            self.changed.notify_one();
        }
        ttl
    }

    pub fn clear(&self, node_id: &str) {
        self.timers().by_node.remove(node_id);
    }

    pub fn clear_all(&self) {
        self.timers().by_node.clear();
    }

    pub fn tracked(&self) -> usize {
        self.timers().by_node.len()
    }

    /// A new leader gives every node that is not down the failover TTL
    /// (see [`Self::failover_wait`]), so clients have time to find it
    /// before any is marked down.
    pub fn initialize(&self, state: &State) {
        let live: Vec<&str> = state
            .nodes()
            .filter(|node| node.status != NODE_STATUS_DOWN)
            .map(|node| node.id.as_str())
            .collect();
        let deadline = Instant::now() + Self::failover_wait(&self.config, live.len());
        let mut timers = self.timers();
        timers.by_node.clear();
        for id in live {
            timers.by_node.insert(id.to_string(), deadline);
        }
        drop(timers);
        self.changed.notify_one();
    }

    /// Removes and returns the nodes whose deadline has passed, and when the
    /// next one falls due.
    fn take_expired(&self) -> (Vec<String>, Option<Instant>) {
        let now = Instant::now();
        let mut timers = self.timers();
        let expired: Vec<String> = timers
            .by_node
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            timers.by_node.remove(id);
        }
        let next = timers.by_node.values().min().copied();
        timers.wake_at = next;
        (expired, next)
    }

    /// Marks nodes down as their timers run out, until `token`'s term of
    /// leadership ends (a leader duty).
    pub async fn run<A>(self: Arc<Self>, token: LeaderToken, apply: A)
    where
        A: Fn(Command) -> futures::future::BoxFuture<'static, ()> + Send + Sync,
    {
        while !token.is_cancelled() {
            let (expired, next) = self.take_expired();
            for node_id in expired {
                tracing::info!(%node_id, "node missed its heartbeat; marking it down");
                apply(Command::NodeUpdateStatus {
                    node_id,
                    status: NODE_STATUS_DOWN.to_string(),
                    event: Some(NodeEvent::new(SUBSYSTEM_CLUSTER, "Node heartbeat missed")),
                    now: chrono::Utc::now(),
                })
                .await;
            }
            let wait = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            // Biased: a simulation must replay branch choices from its seed.
            tokio::select! {
                biased;
                _ = token.cancelled() => {}
                _ = tokio::time::sleep_until(wait) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_nomads_formula() {
        let config = HeartbeatConfig::default();
        for tracked in [0, 100, 499] {
            let ttl = HeartbeatTracker::ttl_for(&config, tracked);
            assert!(
                ttl >= Duration::from_secs(10) && ttl < Duration::from_secs(20),
                "{ttl:?}"
            );
        }
        let ttl = HeartbeatTracker::ttl_for(&config, 10_000);
        assert!(
            ttl >= Duration::from_secs(200) && ttl < Duration::from_secs(400),
            "{ttl:?}"
        );
    }

    #[test]
    fn a_new_leader_waits_out_the_longest_ttl_the_old_one_gave() {
        let config = HeartbeatConfig::default();
        // Few nodes: TTLs are short, the failover TTL is the wait.
        assert_eq!(
            HeartbeatTracker::failover_wait(&config, 100),
            Duration::from_secs(300)
        );
        // 10,000 nodes at 50/s: TTLs up to 400 s, plus the grace.
        let wait = HeartbeatTracker::failover_wait(&config, 10_000);
        assert_eq!(wait, Duration::from_secs(410));
        for _ in 0..100 {
            assert!(HeartbeatTracker::ttl_for(&config, 10_000) + config.grace <= wait);
        }
    }
}
