//! The allocation health watcher (Nomad's alloc health hook, without a
//! deployment): a service allocation is reported healthy once every task
//! that should run has been running for the group's `migrate`
//! `min_healthy_time`, unhealthy if a task fails or `healthy_deadline`
//! passes first. The drainer moves the next allocations of a group only
//! once the replacements it placed have a verdict, so a drain never takes
//! more than `max_parallel` of a group away at once.
//!
//! Caravan has no service checks yet, so `health_check = "checks"` and
//! `"task_states"` judge the same way (Nomad's "checks" with no checks
//! registered is the task states alone).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::alloc::{
    AllocDeploymentStatus, Allocation, TASK_STATE_DEAD, TASK_STATE_RUNNING,
};
use caravan_api_types::job::{MigrateStrategy, Task, JOB_TYPE_SERVICE};
use chrono::{DateTime, Utc};

use super::alloc::{AllocShared, Phase};
use super::state::LocalTask;
use super::task::phase_of;

/// How long a service allocation must run to be healthy, and how long it
/// has to get there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRule {
    pub min_healthy: Duration,
    pub deadline: Duration,
}

/// The rule for `alloc`, if its health is to be watched: service
/// allocations whose health is not known yet.
pub fn rule_for(alloc: &Allocation) -> Option<HealthRule> {
    if alloc
        .deployment_status
        .as_ref()
        .is_some_and(|status| status.healthy.is_some())
    {
        return None;
    }
    let job = alloc.job.as_deref()?;
    if job.job_type != JOB_TYPE_SERVICE {
        return None;
    }
    let group = job.group(&alloc.task_group)?;
    let migrate = group
        .migrate
        .clone()
        .unwrap_or_else(MigrateStrategy::default);
    let nanos = |value: i64| Duration::from_nanos(u64::try_from(value).unwrap_or(0));
    Some(HealthRule {
        min_healthy: nanos(migrate.min_healthy_time),
        deadline: nanos(migrate.healthy_deadline),
    })
}

/// What the tasks say about the allocation's health at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Unhealthy,
    /// Not yet: look again at this time, or when a task changes.
    Wait(Option<DateTime<Utc>>),
}

/// Judges the tasks that must keep running (main tasks and sidecars; a
/// prestart or poststart task that runs to completion and the poststop
/// ones are not waited for).
pub fn verdict(
    tasks: &[Task],
    states: &BTreeMap<String, LocalTask>,
    rule: HealthRule,
    now: DateTime<Utc>,
) -> Verdict {
    let mut latest_start: Option<DateTime<Utc>> = None;
    for task in tasks {
        let state = states.get(&task.name).map(|local| &local.state);
        if state.is_some_and(|s| s.state == TASK_STATE_DEAD && s.failed) {
            return Verdict::Unhealthy;
        }
        let sidecar = task.lifecycle.as_ref().is_some_and(|hook| hook.sidecar);
        if phase_of(task) != Phase::Main && !sidecar {
            continue;
        }
        let Some(state) = state.filter(|s| s.state == TASK_STATE_RUNNING) else {
            return Verdict::Wait(None);
        };
        // A restart starts the healthy time again.
        let started = state.last_restart.max(state.started_at);
        latest_start = latest_start.max(started);
    }
    let min_healthy = chrono::Duration::from_std(rule.min_healthy).unwrap_or_default();
    match latest_start {
        Some(started) if started + min_healthy <= now => Verdict::Healthy,
        Some(started) => Verdict::Wait(Some(started + min_healthy)),
        // No task to wait for: nothing can make it healthier.
        None => Verdict::Healthy,
    }
}

/// Watches `shared` until its health is decided and reports it (or until
/// the allocation stops, when there is nothing left to report).
pub(crate) async fn watch(shared: Arc<AllocShared>, tasks: Vec<Task>, rule: HealthRule) {
    let deadline = Utc::now() + chrono::Duration::from_std(rule.deadline).unwrap_or_default();
    let mut revision = shared.revision.subscribe();
    let mut done = shared.done.subscribe();
    loop {
        if shared.alloc().server_terminal() || *done.borrow() {
            return;
        }
        let now = Utc::now();
        let wake = match verdict(&tasks, &shared.task_states(), rule, now) {
            Verdict::Healthy => return shared.set_health(healthy(true, now)),
            Verdict::Unhealthy => return shared.set_health(healthy(false, now)),
            _ if now >= deadline => return shared.set_health(healthy(false, now)),
            Verdict::Wait(Some(at)) => at.min(deadline),
            Verdict::Wait(None) => deadline,
        };
        let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            changed = revision.changed() => if changed.is_err() { return },
            changed = done.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

fn healthy(healthy: bool, now: DateTime<Utc>) -> AllocDeploymentStatus {
    AllocDeploymentStatus {
        healthy: Some(healthy),
        timestamp: Some(now),
        ..AllocDeploymentStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_api_types::alloc::TaskState;
    use caravan_api_types::job::TaskLifecycle;

    fn rule() -> HealthRule {
        HealthRule {
            min_healthy: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
        }
    }

    fn task(name: &str, hook: Option<(&str, bool)>) -> Task {
        Task {
            name: name.into(),
            lifecycle: hook.map(|(hook, sidecar)| TaskLifecycle {
                hook: hook.into(),
                sidecar,
            }),
            ..Task::default()
        }
    }

    fn state(state: &str, failed: bool, started: Option<DateTime<Utc>>) -> LocalTask {
        LocalTask {
            state: TaskState {
                state: state.into(),
                failed,
                started_at: started,
                ..TaskState::default()
            },
            ..LocalTask::default()
        }
    }

    #[test]
    fn healthy_only_after_min_healthy_time_of_running() {
        let t0 = Utc::now();
        let tasks = [task("web", None)];
        let states = BTreeMap::from([("web".to_string(), state("running", false, Some(t0)))]);
        assert_eq!(
            verdict(&tasks, &states, rule(), t0 + chrono::Duration::seconds(5)),
            Verdict::Wait(Some(t0 + chrono::Duration::seconds(10)))
        );
        assert_eq!(
            verdict(&tasks, &states, rule(), t0 + chrono::Duration::seconds(10)),
            Verdict::Healthy
        );
    }

    #[test]
    fn a_pending_main_task_waits_and_a_failed_one_is_unhealthy() {
        let t0 = Utc::now();
        let tasks = [task("web", None), task("log", None)];
        let mut states = BTreeMap::from([
            ("web".to_string(), state("running", false, Some(t0))),
            ("log".to_string(), state("pending", false, None)),
        ]);
        let later = t0 + chrono::Duration::seconds(60);
        assert_eq!(verdict(&tasks, &states, rule(), later), Verdict::Wait(None));
        states.insert("log".into(), state("dead", true, Some(t0)));
        assert_eq!(verdict(&tasks, &states, rule(), later), Verdict::Unhealthy);
    }

    #[test]
    fn finished_prestart_tasks_are_not_waited_for_but_sidecars_are() {
        let t0 = Utc::now();
        let later = t0 + chrono::Duration::seconds(60);
        let tasks = [
            task("init", Some(("prestart", false))),
            task("proxy", Some(("prestart", true))),
            task("web", None),
        ];
        let mut states = BTreeMap::from([
            ("init".to_string(), state("dead", false, Some(t0))),
            ("proxy".to_string(), state("pending", false, None)),
            ("web".to_string(), state("running", false, Some(t0))),
        ]);
        assert_eq!(verdict(&tasks, &states, rule(), later), Verdict::Wait(None));
        states.insert("proxy".into(), state("running", false, Some(t0)));
        assert_eq!(verdict(&tasks, &states, rule(), later), Verdict::Healthy);
    }

    #[test]
    fn only_service_allocations_without_a_verdict_are_watched() {
        use caravan_api_types::job::{Job, TaskGroup};
        let mut job = Job {
            job_type: "service".into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                migrate: Some(MigrateStrategy {
                    min_healthy_time: 2_000_000_000,
                    ..MigrateStrategy::default()
                }),
                ..TaskGroup::default()
            }],
            ..Job::default()
        };
        let mut alloc = Allocation {
            task_group: "g".into(),
            job: Some(Arc::new(job.clone())),
            ..Allocation::default()
        };
        assert_eq!(
            rule_for(&alloc).map(|r| r.min_healthy),
            Some(Duration::from_secs(2))
        );
        alloc.deployment_status = Some(healthy(true, Utc::now()));
        assert_eq!(rule_for(&alloc), None);
        alloc.deployment_status = None;
        job.job_type = "batch".into();
        alloc.job = Some(Arc::new(job));
        assert_eq!(rule_for(&alloc), None);
    }
}
