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
    deadlines: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl HeartbeatTracker {
    pub fn new(config: HeartbeatConfig) -> Self {
        Self {
            config,
            deadlines: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    fn deadlines(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        lock(&self.deadlines)
    }

    /// The TTL Nomad hands out: `max(min_ttl, nodes / rate)` plus up to as
    /// much again of random jitter, so the cluster's heartbeat rate stays
    /// near `max_heartbeats_per_second`.
    pub fn ttl_for(config: &HeartbeatConfig, tracked: usize) -> Duration {
        let spread = Duration::from_secs_f64(tracked as f64 / config.max_per_second.max(0.001));
        let base = config.min_ttl.max(spread);
        let jitter = rand::rng().random_range(0.0..1.0);
        base + base.mul_f64(jitter)
    }

    /// Restarts `node_id`'s timer; returns the TTL to give the client.
    pub fn reset(&self, node_id: &str) -> Duration {
        let mut deadlines = self.deadlines();
        let ttl = Self::ttl_for(&self.config, deadlines.len());
        deadlines.insert(
            node_id.to_string(),
            Instant::now() + ttl + self.config.grace,
        );
        drop(deadlines);
        self.changed.notify_one();
        ttl
    }

    pub fn clear(&self, node_id: &str) {
        self.deadlines().remove(node_id);
    }

    pub fn clear_all(&self) {
        self.deadlines().clear();
    }

    pub fn tracked(&self) -> usize {
        self.deadlines().len()
    }

    /// A new leader gives every node that is not down the failover TTL, so
    /// clients have time to find it before any is marked down.
    pub fn initialize(&self, state: &State) {
        let deadline = Instant::now() + self.config.failover_ttl;
        let mut deadlines = self.deadlines();
        deadlines.clear();
        for node in state.nodes() {
            if node.status != NODE_STATUS_DOWN {
                deadlines.insert(node.id.clone(), deadline);
            }
        }
        drop(deadlines);
        self.changed.notify_one();
    }

    /// Removes and returns the nodes whose deadline has passed, and when the
    /// next one falls due.
    fn take_expired(&self) -> (Vec<String>, Option<Instant>) {
        let now = Instant::now();
        let mut deadlines = self.deadlines();
        let expired: Vec<String> = deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            deadlines.remove(id);
        }
        (expired, deadlines.values().min().copied())
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
}
