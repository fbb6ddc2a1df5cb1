//! The reschedule policy (scheduling.md §7.3): whether a failed allocation
//! may be replaced, after what delay, and the tracker its replacement
//! carries.

use caravan_api_types::alloc::{Allocation, RescheduleEvent, RescheduleTracker};
use caravan_api_types::job::ReschedulePolicy;

/// Events an unlimited policy keeps on the replacement.
const UNLIMITED_HISTORY: usize = 5;

fn events(alloc: &Allocation) -> &[RescheduleEvent] {
    alloc
        .reschedule_tracker
        .as_ref()
        .and_then(|t| t.events.as_deref())
        .unwrap_or_default()
}

/// When the allocation failed: the latest `FinishedAt` of its tasks, else
/// its `ModifyTime` (Unix ns).
pub fn failure_time(alloc: &Allocation) -> i64 {
    alloc
        .task_states
        .iter()
        .flat_map(|states| states.values())
        .filter_map(|state| state.finished_at)
        .filter_map(|time| time.timestamp_nanos_opt())
        .max()
        .unwrap_or(alloc.modify_time)
}

/// Nomad's `NextDelay`.
pub fn next_delay(policy: &ReschedulePolicy, alloc: &Allocation) -> i64 {
    let events = events(alloc);
    let mut delay = match (events.last(), policy.delay_function.as_str()) {
        (None, _) | (_, "constant") => policy.delay,
        (Some(last), "exponential") => last.delay.saturating_mul(2),
        (Some(last), "fibonacci") => match events.len() {
            1 => last.delay,
            n => {
                let before = events[n - 2].delay;
                // A sequence that was just reset starts over.
                if before == policy.max_delay && last.delay == policy.delay {
                    last.delay
                } else {
                    last.delay.saturating_add(before)
                }
            }
        },
        (Some(_), _) => policy.delay,
    };
    if policy.max_delay > 0 && delay > policy.max_delay {
        delay = policy.max_delay;
        // Ran longer than the cap since the last reschedule: start over.
        if let Some(last) = events.last() {
            if failure_time(alloc) - last.reschedule_time > delay {
                delay = policy.delay;
            }
        }
    }
    delay
}

/// Reschedule events within `interval` before `at`.
fn attempted(policy: &ReschedulePolicy, alloc: &Allocation, at: i64) -> usize {
    events(alloc)
        .iter()
        .filter(|e| at - e.reschedule_time < policy.interval)
        .count()
}

/// When the allocation may be replaced, or `None` when the policy allows no
/// more attempts.
pub fn next_reschedule_time(policy: &ReschedulePolicy, alloc: &Allocation) -> Option<i64> {
    let failed_at = failure_time(alloc);
    let delay = next_delay(policy, alloc);
    let eligible = policy.unlimited
        || (policy.attempts > 0
            && (attempted(policy, alloc, failed_at) as i64) < policy.attempts
            && delay < policy.interval);
    eligible.then(|| failed_at.saturating_add(delay))
}

/// The tracker a replacement of `previous` carries.
pub fn tracker_for_replacement(
    policy: &ReschedulePolicy,
    previous: &Allocation,
    now: i64,
) -> RescheduleTracker {
    let mut kept: Vec<RescheduleEvent> = if policy.unlimited {
        let all = events(previous);
        all[all.len().saturating_sub(UNLIMITED_HISTORY - 1)..].to_vec()
    } else {
        events(previous)
            .iter()
            .filter(|e| now - e.reschedule_time < policy.interval)
            .cloned()
            .collect()
    };
    kept.push(RescheduleEvent {
        reschedule_time: now,
        prev_alloc_id: previous.id.clone(),
        prev_node_id: previous.node_id.clone(),
        delay: next_delay(policy, previous),
    });
    RescheduleTracker {
        events: Some(kept),
        last_reschedule: "ok".to_string(),
    }
}

/// Nodes the replacement should avoid: where it failed before.
pub fn penalty_nodes(previous: &Allocation) -> Vec<String> {
    let mut nodes: Vec<String> = events(previous)
        .iter()
        .map(|e| e.prev_node_id.clone())
        .collect();
    nodes.push(previous.node_id.clone());
    nodes
}
