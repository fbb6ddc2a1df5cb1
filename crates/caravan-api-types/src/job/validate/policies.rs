//! Update, migrate, restart and reschedule policies.

use crate::duration::format_go_duration_nanos as go;
use crate::job::group::{MigrateStrategy, ReschedulePolicy, RestartPolicy, UpdateStrategy};

const MIN_INTERVAL: i64 = 5_000_000_000;
const MIN_DELAY: i64 = 5_000_000_000;

fn validate_health_check(check: &str, allow_manual: bool) -> Option<String> {
    let valid = matches!(check, "checks" | "task_states") || (allow_manual && check == "manual");
    (!valid).then(|| format!("Invalid health check given: {check:?}"))
}

pub(super) fn validate_update(update: &UpdateStrategy) -> Vec<String> {
    let mut errors = Vec::new();
    errors.extend(validate_health_check(&update.health_check, true));
    if update.max_parallel < 0 {
        errors.push(format!(
            "Max parallel can not be less than zero: {} < 0",
            update.max_parallel
        ));
    }
    if update.canary < 0 {
        errors.push(format!(
            "Canary count can not be less than zero: {} < 0",
            update.canary
        ));
    }
    if update.canary == 0 && update.auto_promote {
        errors.push("Auto Promote requires a Canary count greater than zero".into());
    }
    if update.min_healthy_time < 0 {
        errors.push(format!(
            "Minimum healthy time may not be less than zero: {}",
            go(update.min_healthy_time)
        ));
    }
    if update.healthy_deadline <= 0 {
        errors.push(format!(
            "Healthy deadline must be greater than zero: {}",
            go(update.healthy_deadline)
        ));
    }
    if update.progress_deadline < 0 {
        errors.push(format!(
            "Progress deadline must be zero or greater: {}",
            go(update.progress_deadline)
        ));
    }
    if update.min_healthy_time >= update.healthy_deadline {
        errors.push(format!(
            "Minimum healthy time must be less than healthy deadline: {} > {}",
            go(update.min_healthy_time),
            go(update.healthy_deadline)
        ));
    }
    if update.progress_deadline != 0 && update.healthy_deadline >= update.progress_deadline {
        errors.push(format!(
            "Healthy deadline must be less than progress deadline: {} > {}",
            go(update.healthy_deadline),
            go(update.progress_deadline)
        ));
    }
    if update.stagger <= 0 {
        errors.push(format!(
            "Stagger must be greater than zero: {}",
            go(update.stagger)
        ));
    }
    errors
}

pub(super) fn validate_migrate(migrate: &MigrateStrategy) -> Vec<String> {
    let mut errors = Vec::new();
    if migrate.max_parallel < 0 {
        errors.push("MaxParallel must be >= 0".into());
    }
    errors.extend(validate_health_check(&migrate.health_check, false));
    if migrate.min_healthy_time < 0 {
        errors.push("MinHealthyTime must be >= 0".into());
    }
    if migrate.min_healthy_time > migrate.healthy_deadline {
        errors.push(format!(
            "MinHealthyTime must be less than HealthyDeadline: {} > {}",
            go(migrate.min_healthy_time),
            go(migrate.healthy_deadline)
        ));
    }
    errors
}

pub(super) fn validate_restart(restart: &RestartPolicy) -> Vec<String> {
    let mut errors = Vec::new();
    match restart.mode.as_str() {
        "fail" | "delay" => {}
        other => errors.push(format!("Unsupported restart mode: {other:?}")),
    }
    if restart.attempts == 0 && restart.mode != "fail" {
        errors.push(format!(
            "Restart policy {:?} with {} attempts is ambiguous",
            restart.mode, restart.attempts
        ));
    }
    if restart.interval < MIN_INTERVAL {
        errors.push(format!(
            "Interval can not be less than {} (got {})",
            go(MIN_INTERVAL),
            go(restart.interval)
        ));
    }
    if restart.attempts < 0 {
        errors.push(format!(
            "Attempts can not be negative (got {})",
            restart.attempts
        ));
    } else if restart.attempts > 0
        && restart.delay.saturating_mul(restart.attempts) > restart.interval
    {
        errors.push(format!(
            "Nomad can't restart the TaskGroup {} times in an interval of: {} with a delay of: {}",
            restart.attempts,
            go(restart.interval),
            go(restart.delay)
        ));
    }
    errors
}

pub(super) fn validate_reschedule(policy: &ReschedulePolicy) -> Vec<String> {
    let mut errors = Vec::new();
    if policy.attempts == 0 && !policy.unlimited {
        return errors;
    }
    if policy.attempts > 0 && policy.unlimited {
        errors.push(format!(
            "Reschedule Policy with Attempts = {}, Interval = {}, and Unlimited = {} is ambiguous",
            policy.attempts,
            go(policy.interval),
            policy.unlimited
        ));
    }
    if policy.delay < MIN_DELAY {
        errors.push(format!(
            "Delay cannot be less than {} (got {})",
            go(MIN_DELAY),
            go(policy.delay)
        ));
    }
    match policy.delay_function.as_str() {
        "constant" => {}
        "exponential" | "fibonacci" => {
            if policy.max_delay < MIN_DELAY {
                errors.push(format!(
                    "Max Delay cannot be less than {} (got {})",
                    go(MIN_DELAY),
                    go(policy.max_delay)
                ));
            } else if policy.max_delay < policy.delay {
                errors.push(format!(
                    "Max Delay cannot be less than Delay {} (got {})",
                    go(policy.delay),
                    go(policy.max_delay)
                ));
            }
        }
        other => errors.push(format!(
            "Invalid delay function {other:?}, must be one of [\"constant\" \"exponential\" \"fibonacci\"]"
        )),
    }
    if !policy.unlimited && policy.interval < 15_000_000_000 && policy.attempts > 0 {
        errors.push(format!(
            "Interval cannot be less than 15s (got {})",
            go(policy.interval)
        ));
    }
    errors
}
