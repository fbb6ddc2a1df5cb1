//! How node commands change the nodes table (Nomad's `node_endpoint.go`
//! and state store rules).

use std::collections::BTreeMap;

use caravan_api_types::node::{
    DrainSpec, DrainStrategy, LastDrain, Node, NodeEvent, DRAIN_STATUS_CANCELED,
    DRAIN_STATUS_COMPLETE, DRAIN_STATUS_DRAINING, ELIGIBLE, INELIGIBLE, NODE_STATUS_DISCONNECTED,
    NODE_STATUS_DOWN, NODE_STATUS_INITIALIZING, NODE_STATUS_READY, SUBSYSTEM_CLUSTER,
    SUBSYSTEM_DRAIN,
};
use chrono::{DateTime, SubsecRound, Utc};

use crate::state::secrets_equal;

pub const NODE_NOT_FOUND: &str = "node not found";

/// Stamps an event with the index of the write that stores it.
fn event(subsystem: &str, message: &str, now: DateTime<Utc>, index: u64) -> NodeEvent {
    NodeEvent {
        message: message.to_string(),
        subsystem: subsystem.to_string(),
        details: None,
        timestamp: Some(now),
        create_index: index,
    }
}

/// A first registration or a re-registration.
pub fn register(
    existing: Option<&Node>,
    incoming: &Node,
    now: DateTime<Utc>,
    index: u64,
) -> Result<Node, String> {
    let mut node = incoming.clone();
    node.modify_index = index;
    if node.node_pool.is_empty() {
        node.node_pool = "default".to_string();
    }
    match existing {
        None => {
            node.create_index = index;
            if node.status.is_empty() {
                node.status = NODE_STATUS_INITIALIZING.to_string();
            }
            node.scheduling_eligibility = ELIGIBLE.to_string();
            node.drain_strategy = None;
            node.last_drain = None;
            node.status_updated_at = now.timestamp();
            node.events = vec![event(
                SUBSYSTEM_CLUSTER,
                "Node registered",
                now.trunc_subsecs(0),
                index,
            )];
        }
        Some(stored) => {
            if !stored.secret_id.is_empty()
                && !secrets_equal(&stored.secret_id, &incoming.secret_id)
            {
                return Err("node secret ID does not match. Not registering node.".to_string());
            }
            node.create_index = stored.create_index;
            node.status = stored.status.clone();
            node.status_updated_at = stored.status_updated_at;
            node.scheduling_eligibility = stored.scheduling_eligibility.clone();
            node.drain_strategy = stored.drain_strategy.clone();
            node.last_drain = stored.last_drain.clone();
            node.last_missed_heartbeat_index = stored.last_missed_heartbeat_index;
            node.last_alloc_update_index = stored.last_alloc_update_index;
            node.events = stored.events.clone();
            if stored.status == NODE_STATUS_DOWN {
                node.push_event(event(SUBSYSTEM_CLUSTER, "Node re-registered", now, index));
            }
        }
    }
    node.drain = node.drain_strategy.is_some();
    Ok(node)
}

/// A status change, by heartbeat or by the leader's heartbeat timer.
pub fn update_status(
    stored: &Node,
    status: &str,
    extra: Option<&NodeEvent>,
    now: DateTime<Utc>,
    index: u64,
) -> Node {
    let mut node = stored.clone();
    // A disconnected node must resync its allocations before it is ready.
    let status = if stored.status == NODE_STATUS_DISCONNECTED && status == NODE_STATUS_READY {
        NODE_STATUS_INITIALIZING
    } else {
        status
    };
    if stored.status == NODE_STATUS_DOWN && status == NODE_STATUS_READY {
        node.push_event(event(
            SUBSYSTEM_CLUSTER,
            "Node reregistered by heartbeat",
            now,
            index,
        ));
    }
    if let Some(extra) = extra {
        let mut extra = extra.clone();
        extra.create_index = index;
        node.push_event(extra);
    }
    if status != stored.status {
        node.status_updated_at = now.timestamp();
    }
    match status {
        NODE_STATUS_DOWN | NODE_STATUS_DISCONNECTED => node.last_missed_heartbeat_index = index,
        NODE_STATUS_READY => node.last_missed_heartbeat_index = 0,
        _ => {}
    }
    node.status = status.to_string();
    node.modify_index = index;
    node
}

pub fn update_eligibility(
    stored: &Node,
    eligibility: &str,
    now: DateTime<Utc>,
    index: u64,
) -> Result<Node, String> {
    if eligibility != ELIGIBLE && eligibility != INELIGIBLE {
        return Err(format!("invalid scheduling eligibility \"{eligibility}\""));
    }
    if stored.is_draining() && eligibility == ELIGIBLE {
        return Err(
            "can not set node's scheduling eligibility to eligible while it is draining"
                .to_string(),
        );
    }
    let mut node = stored.clone();
    if stored.scheduling_eligibility != eligibility {
        let message = if eligibility == ELIGIBLE {
            "Node marked as eligible for scheduling"
        } else {
            "Node marked as ineligible for scheduling"
        };
        node.push_event(event(SUBSYSTEM_CLUSTER, message, now, index));
        node.scheduling_eligibility = eligibility.to_string();
    }
    node.modify_index = index;
    Ok(node)
}

pub struct DrainUpdate<'a> {
    pub spec: Option<&'a DrainSpec>,
    pub mark_eligible: bool,
    pub meta: Option<&'a BTreeMap<String, String>>,
    pub accessor: &'a str,
    pub now: DateTime<Utc>,
}

pub fn update_drain(stored: &Node, update: DrainUpdate<'_>, index: u64) -> Node {
    let mut node = stored.clone();
    let now = update.now;
    let seconds = now.trunc_subsecs(0);
    match update.spec {
        Some(spec) => {
            let started_at = stored
                .drain_strategy
                .as_ref()
                .and_then(|strategy| strategy.started_at)
                .unwrap_or(now);
            let force_deadline =
                (spec.deadline > 0).then(|| now + chrono::Duration::nanoseconds(spec.deadline));
            let message = if stored.is_draining() {
                "Node drain strategy updated"
            } else {
                "Node drain strategy set"
            };
            node.drain_strategy = Some(DrainStrategy {
                deadline: spec.deadline,
                ignore_system_jobs: spec.ignore_system_jobs,
                force_deadline,
                started_at: Some(started_at),
            });
            node.scheduling_eligibility = INELIGIBLE.to_string();
            let mut last = match (&stored.last_drain, stored.is_draining()) {
                (Some(last), true) => last.clone(),
                _ => LastDrain {
                    started_at: Some(seconds),
                    status: DRAIN_STATUS_DRAINING.to_string(),
                    accessor_id: update.accessor.to_string(),
                    ..LastDrain::default()
                },
            };
            last.updated_at = Some(seconds);
            last.status = DRAIN_STATUS_DRAINING.to_string();
            if let Some(meta) = update.meta.filter(|meta| !meta.is_empty()) {
                last.meta = Some(meta.clone());
            }
            node.last_drain = Some(last);
            node.push_event(event(SUBSYSTEM_DRAIN, message, now, index));
        }
        None => {
            if stored.is_draining() {
                node.drain_strategy = None;
                if let Some(last) = node.last_drain.as_mut() {
                    last.status = DRAIN_STATUS_CANCELED.to_string();
                    last.updated_at = Some(seconds);
                    if let Some(meta) = update.meta.filter(|meta| !meta.is_empty()) {
                        last.meta = Some(meta.clone());
                    }
                }
                node.push_event(event(SUBSYSTEM_DRAIN, "Node drain disabled", now, index));
            }
            if update.mark_eligible && node.scheduling_eligibility != ELIGIBLE {
                node.scheduling_eligibility = ELIGIBLE.to_string();
                node.push_event(event(
                    SUBSYSTEM_CLUSTER,
                    "Node marked as eligible for scheduling",
                    now,
                    index,
                ));
            }
        }
    }
    node.drain = node.drain_strategy.is_some();
    node.modify_index = index;
    node
}

/// The drain is over: the strategy goes, the node stays ineligible.
pub fn complete_drain(
    stored: &Node,
    deadline_reached: bool,
    now: DateTime<Utc>,
    index: u64,
) -> Node {
    let mut node = stored.clone();
    node.drain_strategy = None;
    node.drain = false;
    if let Some(last) = node.last_drain.as_mut() {
        last.status = DRAIN_STATUS_COMPLETE.to_string();
        last.updated_at = Some(now.trunc_subsecs(0));
    }
    let mut completed = event(SUBSYSTEM_DRAIN, "Node drain complete", now, index);
    if deadline_reached {
        completed = completed.with_detail("deadline_reached", "true");
    }
    node.push_event(completed);
    node.modify_index = index;
    node
}
