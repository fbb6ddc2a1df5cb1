//! The restart decision after a task exits or fails to start: Nomad's
//! restart tracker (`RestartPolicy` attempts within an interval, a delay
//! with up to 25 % jitter, and mode `fail` or `delay`), with its reasons.

use std::time::Duration;

use caravan_api_types::duration::format_go_duration_nanos;
use caravan_api_types::job::RestartPolicy;

/// The reason given when a restart is within the policy (not shown in the
/// `Restarting` event's display message).
pub const REASON_WITHIN_POLICY: &str = "Restart within policy";
pub const REASON_NO_RESTARTS: &str = "Policy allows no restarts";
pub const REASON_UNRECOVERABLE: &str = "Error was unrecoverable";
pub const REASON_SUCCESS: &str = "Restart unnecessary as task terminated successfully";
pub const REASON_DELAY: &str = "Exceeded allowed attempts, applying a delay";

/// What to do after a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`.
    Restart { delay: Duration, reason: String },
    /// Leave it dead and failed (`Not Restarting`).
    Fail { reason: String },
    /// Leave it dead, not failed: it finished and need not run again.
    Done,
}

/// How the task ended, as the tracker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with status 0 and no signal.
    Success,
    /// Exited otherwise.
    Failure,
    /// The driver could not start it; `recoverable` when trying again may
    /// help.
    StartError { recoverable: bool },
}

/// One task's restart bookkeeping.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    /// Restart after a successful exit (services: yes; batch: no).
    on_success: bool,
    count: i64,
    /// Nanoseconds since the Unix epoch when the current interval began.
    interval_start: i64,
}

impl RestartTracker {
    /// A tracker whose first interval begins at `now` (UnixNano), when the
    /// task runner starts, as Nomad's does.
    pub fn new(policy: RestartPolicy, on_success: bool, now: i64) -> Self {
        Self {
            policy,
            on_success,
            count: 0,
            interval_start: now,
        }
    }

    /// The decision after `outcome` at `now` (UnixNano); `jitter` in
    /// `[0, 1)` spreads the delay by up to 25 %.
    pub fn decide(&mut self, outcome: Outcome, now: i64, jitter: f64) -> Decision {
        let success = outcome == Outcome::Success;
        if self.policy.attempts == 0 {
            return match success && !self.on_success {
                true => Decision::Done,
                false => Decision::Fail {
                    reason: REASON_NO_RESTARTS.to_string(),
                },
            };
        }
        if self.interval_start == 0
            || now > self.interval_start.saturating_add(self.policy.interval)
        {
            self.count = 0;
            self.interval_start = now;
        }
        self.count += 1;
        if outcome == (Outcome::StartError { recoverable: false }) {
            return Decision::Fail {
                reason: REASON_UNRECOVERABLE.to_string(),
            };
        }
        if success && !self.on_success {
            return Decision::Done;
        }
        if self.count > self.policy.attempts {
            if self.policy.mode == "delay" {
                let left = self
                    .interval_start
                    .saturating_add(self.policy.interval)
                    .saturating_sub(now)
                    .max(0);
                return Decision::Restart {
                    delay: nanos(left),
                    reason: REASON_DELAY.to_string(),
                };
            }
            return Decision::Fail {
                reason: format!(
                    "Exceeded allowed attempts {} in interval {} and mode is \"fail\"",
                    self.policy.attempts,
                    format_go_duration_nanos(self.policy.interval)
                ),
            };
        }
        let delay = self.policy.delay.max(0) as f64;
        let jittered = delay + delay * 0.25 * jitter.clamp(0.0, 1.0);
        Decision::Restart {
            delay: nanos(jittered as i64),
            reason: REASON_WITHIN_POLICY.to_string(),
        }
    }
}

fn nanos(value: i64) -> Duration {
    Duration::from_nanos(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn policy(attempts: i64, mode: &str) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval: 60 * SECOND,
            delay: 2 * SECOND,
            mode: mode.to_string(),
            render_templates: false,
        }
    }

    #[test]
    fn failures_restart_within_the_policy_then_fail_with_nomads_reason() {
        let now = 1_000 * SECOND;
        let mut tracker = RestartTracker::new(policy(2, "fail"), true, now);
        for at in [now, now + SECOND] {
            match tracker.decide(Outcome::Failure, at, 0.0) {
                Decision::Restart { delay, reason } => {
                    assert_eq!(delay, Duration::from_secs(2));
                    assert_eq!(reason, REASON_WITHIN_POLICY);
                }
                other => panic!("expected a restart, got {other:?}"),
            }
        }
        assert_eq!(
            tracker.decide(Outcome::Failure, now + 2 * SECOND, 0.0),
            Decision::Fail {
                reason: "Exceeded allowed attempts 2 in interval 1m0s and mode is \"fail\""
                    .to_string()
            }
        );
    }

    #[test]
    fn a_new_interval_resets_the_count() {
        let now = 1_000 * SECOND;
        let mut tracker = RestartTracker::new(policy(1, "fail"), true, now);
        assert!(matches!(
            tracker.decide(Outcome::Failure, now, 0.0),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            tracker.decide(Outcome::Failure, now + 61 * SECOND, 0.0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn delay_mode_waits_out_the_interval() {
        let now = 1_000 * SECOND;
        let mut tracker = RestartTracker::new(policy(1, "delay"), true, now);
        tracker.decide(Outcome::Failure, now, 0.0);
        assert_eq!(
            tracker.decide(Outcome::Failure, now + 10 * SECOND, 0.0),
            Decision::Restart {
                delay: Duration::from_secs(50),
                reason: REASON_DELAY.to_string()
            }
        );
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        let mut tracker = RestartTracker::new(policy(5, "fail"), true, SECOND);
        match tracker.decide(Outcome::Failure, SECOND, 0.999) {
            Decision::Restart { delay, .. } => {
                assert!(delay >= Duration::from_secs(2) && delay < Duration::from_millis(2_500))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_success_is_done_and_services_restart_after_it() {
        let mut batch = RestartTracker::new(policy(3, "fail"), false, SECOND);
        assert_eq!(batch.decide(Outcome::Success, SECOND, 0.0), Decision::Done);
        let mut service = RestartTracker::new(policy(3, "fail"), true, SECOND);
        assert!(matches!(
            service.decide(Outcome::Success, SECOND, 0.0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn no_attempts_and_unrecoverable_errors_fail_at_once() {
        let mut none = RestartTracker::new(policy(0, "fail"), true, SECOND);
        assert_eq!(
            none.decide(Outcome::Failure, SECOND, 0.0),
            Decision::Fail {
                reason: REASON_NO_RESTARTS.to_string()
            }
        );
        let mut tracker = RestartTracker::new(policy(3, "fail"), true, SECOND);
        assert_eq!(
            tracker.decide(Outcome::StartError { recoverable: false }, SECOND, 0.0),
            Decision::Fail {
                reason: REASON_UNRECOVERABLE.to_string()
            }
        );
    }
}
