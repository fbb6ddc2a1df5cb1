//! Task events with Nomad's types, fields and display messages
//! (jobs-api.md §3.7), and the task state they are recorded in.

use std::collections::BTreeMap;
use std::time::Duration;

use caravan_api_types::alloc::{TaskEvent, TaskState};
use caravan_api_types::duration::format_go_duration_nanos;
use caravan_drivers::ExitResult;

use super::restart::REASON_WITHIN_POLICY;

/// A task keeps at most this many events; the oldest goes first.
pub const MAX_EVENTS: usize = 10;

pub const RECEIVED: &str = "Received";
pub const TASK_SETUP: &str = "Task Setup";
pub const STARTED: &str = "Started";
pub const TERMINATED: &str = "Terminated";
pub const RESTARTING: &str = "Restarting";
pub const NOT_RESTARTING: &str = "Not Restarting";
pub const KILLING: &str = "Killing";
pub const KILLED: &str = "Killed";
pub const DRIVER_FAILURE: &str = "Driver Failure";
pub const SETUP_FAILURE: &str = "Setup Failure";
pub const SIBLING_FAILED: &str = "Sibling Task Failed";
pub const LEADER_DEAD: &str = "Leader Task Dead";
pub const MAIN_DEAD: &str = "Main Tasks Dead";
pub const FAILED_RESTORING: &str = "Failed Restoring Task";
pub const SIGNALING: &str = "Signaling";
pub const RESTART_SIGNALED: &str = "Restart Signaled";

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// An event of `kind` now, with `display` as its display message.
pub fn event(kind: &str, display: impl Into<String>) -> TaskEvent {
    TaskEvent {
        event_type: kind.to_string(),
        time: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        display_message: display.into(),
        details: BTreeMap::new(),
        ..TaskEvent::default()
    }
}

pub fn received() -> TaskEvent {
    event(RECEIVED, "Task received by client")
}

pub fn task_setup() -> TaskEvent {
    let mut setup = event(TASK_SETUP, "Building Task Directory");
    setup.message = "Building Task Directory".to_string();
    setup
        .details
        .insert("message".into(), "Building Task Directory".into());
    setup
}

pub fn started() -> TaskEvent {
    event(STARTED, "Task started by client")
}

pub fn terminated(exit: &ExitResult) -> TaskEvent {
    let mut display = format!("Exit Code: {}", exit.exit_code);
    if exit.signal != 0 {
        display.push_str(&format!(", Signal: {}", exit.signal));
    }
    if exit.oom_killed {
        display.push_str(", Exit Message: \"OOM Killed\"");
    }
    let mut terminated = event(TERMINATED, display);
    terminated.exit_code = i64::from(exit.exit_code);
    terminated.signal = i64::from(exit.signal);
    terminated.details = BTreeMap::from([
        ("exit_code".into(), exit.exit_code.to_string()),
        ("signal".into(), exit.signal.to_string()),
        ("oom_killed".into(), exit.oom_killed.to_string()),
    ]);
    if exit.oom_killed {
        terminated.message = "OOM Killed".to_string();
    }
    terminated
}

pub fn restarting(delay: Duration, reason: &str) -> TaskEvent {
    let when = format!(
        "Task restarting in {}",
        format_go_duration_nanos(nanos(delay))
    );
    // A user's restart gives no reason: the bare delay is shown.
    let display = match reason.is_empty() || reason == REASON_WITHIN_POLICY {
        true => when,
        false => format!("{reason} - {when}"),
    };
    let mut restarting = event(RESTARTING, display);
    restarting.restart_reason = reason.to_string();
    restarting.start_delay = nanos(delay);
    restarting.details = BTreeMap::from([
        ("restart_reason".into(), reason.to_string()),
        ("start_delay".into(), nanos(delay).to_string()),
    ]);
    restarting
}

pub fn not_restarting(reason: &str) -> TaskEvent {
    let mut not = event(NOT_RESTARTING, reason);
    not.restart_reason = reason.to_string();
    not.fails_task = true;
    not.details = BTreeMap::from([
        ("restart_reason".into(), reason.to_string()),
        ("fails_task".into(), "true".into()),
    ]);
    not
}

pub fn killing(timeout: Duration, reason: &str) -> TaskEvent {
    let display = match reason.is_empty() {
        true => format!(
            "Sent interrupt. Waiting {} before force killing",
            format_go_duration_nanos(nanos(timeout))
        ),
        false => reason.to_string(),
    };
    let mut killing = event(KILLING, display);
    killing.kill_timeout = nanos(timeout);
    killing.kill_reason = reason.to_string();
    killing
        .details
        .insert("kill_timeout".into(), nanos(timeout).to_string());
    killing
}

pub fn killed(error: Option<&str>) -> TaskEvent {
    let mut killed = event(KILLED, error.unwrap_or("Task successfully killed"));
    if let Some(error) = error {
        killed.kill_error = error.to_string();
        killed
            .details
            .insert("kill_error".into(), error.to_string());
    }
    killed
}

pub fn driver_failure(error: &str) -> TaskEvent {
    let mut failure = event(DRIVER_FAILURE, error);
    failure.driver_error = error.to_string();
    failure.details.insert("driver_error".into(), error.into());
    failure
}

pub fn setup_failure(error: &str) -> TaskEvent {
    let text = format!("failed to setup alloc: {error}");
    let mut failure = event(SETUP_FAILURE, text.clone());
    failure.setup_error = text.clone();
    failure.fails_task = true;
    failure.details.insert("setup_error".into(), text);
    failure
}

pub fn sibling_failed(sibling: &str) -> TaskEvent {
    let mut failed = event(SIBLING_FAILED, format!("Task's sibling {sibling:?} failed"));
    failed.failed_sibling = sibling.to_string();
    failed
        .details
        .insert("failed_sibling".into(), sibling.into());
    failed
}

pub fn leader_dead() -> TaskEvent {
    event(LEADER_DEAD, "Leader Task in Group dead")
}

pub fn main_dead() -> TaskEvent {
    event(MAIN_DEAD, "Main tasks in the group died")
}

pub fn failed_restoring(error: &str) -> TaskEvent {
    let mut failed = event(
        FAILED_RESTORING,
        "failed to restore task; will not run until server is contacted",
    );
    failed.message = error.to_string();
    failed
}

pub fn signaling(signal: &str, reason: &str) -> TaskEvent {
    let mut display = format!("Task being sent signal {signal}");
    if !reason.is_empty() {
        display.push_str(&format!(": {reason}"));
    }
    let mut signaling = event(SIGNALING, display);
    signaling.task_signal = signal.to_string();
    signaling.task_signal_reason = reason.to_string();
    signaling
}

/// A restart asked for through the API (`reason` says which tasks).
pub fn restart_signaled(reason: &str) -> TaskEvent {
    let mut signaled = event(RESTART_SIGNALED, reason);
    signaled.restart_reason = reason.to_string();
    signaled
        .details
        .insert("restart_reason".into(), reason.to_string());
    signaled
}

/// Appends `event`, keeping at most [`MAX_EVENTS`].
pub fn record(state: &mut TaskState, event: TaskEvent) {
    let events = state.events.get_or_insert_with(Vec::new);
    events.push(event);
    if events.len() > MAX_EVENTS {
        let excess = events.len() - MAX_EVENTS;
        events.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_messages_are_nomads() {
        let exit = ExitResult {
            exit_code: 2,
            signal: 9,
            oom_killed: false,
        };
        assert_eq!(terminated(&exit).display_message, "Exit Code: 2, Signal: 9");
        assert_eq!(
            restarting(Duration::from_millis(15_200), REASON_WITHIN_POLICY).display_message,
            "Task restarting in 15.2s"
        );
        assert_eq!(
            restarting(
                Duration::from_secs(50),
                "Exceeded allowed attempts, applying a delay"
            )
            .display_message,
            "Exceeded allowed attempts, applying a delay - Task restarting in 50s"
        );
        assert_eq!(
            restarting(Duration::ZERO, "").display_message,
            "Task restarting in 0s"
        );
        assert_eq!(
            restart_signaled("User requested task to restart").display_message,
            "User requested task to restart"
        );
        assert_eq!(
            killing(Duration::from_secs(5), "").display_message,
            "Sent interrupt. Waiting 5s before force killing"
        );
        assert_eq!(
            sibling_failed("db").display_message,
            "Task's sibling \"db\" failed"
        );
    }

    #[test]
    fn only_the_last_ten_events_are_kept() {
        let mut state = TaskState::default();
        for index in 0..12 {
            record(&mut state, event("x", index.to_string()));
        }
        let events = state.events.unwrap();
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events[0].display_message, "2");
    }
}
