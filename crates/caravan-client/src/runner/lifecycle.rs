//! What the client endpoints do to an allocation this node runs
//! (scheduling.md §8.3, §8.6, §10): signal its tasks, restart them outside
//! the restart policy, garbage collect it once terminal, and measure what
//! its tasks use.
//!
//! A signal goes straight to the driver with the task's saved handle. A
//! restart goes through the task's runner, which alone may stop and start
//! its instance; it takes the request only while the task runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_api_types::alloc::TASK_STATE_RUNNING;
use caravan_api_types::job::Task;
use caravan_api_types::sync::lock;
use caravan_drivers::signal::parse_signal;
use caravan_drivers::{Driver, DriverError, ExecRequest, ExecSession, TaskHandle};
use tokio::sync::oneshot;

use super::alloc::AllocShared;
use super::events;
use super::restart::Decision;
use super::task::{record_decision, TaskRunner};
use super::AllocManager;
use crate::stats::{alloc_usage, task_usage, AllocResourceUsage, SAMPLE_WINDOW};

/// The `Restart Signaled` reasons, by what was asked.
pub const REASON_RESTART_TASK: &str = "User requested task to restart";
pub const REASON_RESTART_RUNNING: &str = "User requested running tasks to restart";
pub const REASON_RESTART_ALL: &str = "User requested all tasks to restart";

/// How long a collection may take to remove an allocation's directory.
const DESTROY_LIMIT: Duration = Duration::from_secs(30);

/// Why a lifecycle request was refused (the texts are Nomad's where it
/// has one).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("Unknown allocation {0:?}")]
    UnknownAlloc(String),
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    #[error("Task not found")]
    TaskNotFound,
    #[error("Task not running")]
    TaskNotRunning,
    #[error("task name cannot be set when restarting all tasks")]
    TaskNameWithAllTasks,
    #[error(
        "allocation {0:?} is not terminal: its tasks must be dead before it is garbage collected"
    )]
    NotTerminal(String),
    #[error("{0}")]
    Driver(#[from] DriverError),
}

/// A restart asked of a task's runner; answered once the instance has
/// stopped (the next one starts right after).
#[derive(Debug)]
pub struct RestartRequest {
    /// The `Restart Signaled` event's reason.
    pub reason: String,
    pub reply: oneshot::Sender<Result<(), LifecycleError>>,
}

/// How a restart asked for through the API went.
pub(super) enum UserRestart {
    /// The instance is gone: start the next one now.
    Done,
    /// The instance could not be stopped and still runs.
    Failed,
    /// Killed meanwhile: the task is dead for good.
    Killed,
}

/// The tasks of the allocation's group, in the job's order.
fn job_tasks(shared: &AllocShared) -> Vec<Task> {
    let alloc = shared.alloc();
    alloc
        .job
        .as_ref()
        .and_then(|job| job.group(&alloc.task_group))
        .map(|group| group.tasks.clone())
        .unwrap_or_default()
}

/// Every task is dead for good (as `AllocShared::is_finished`: an
/// allocation whose tasks are not known yet is not).
fn terminal(shared: &AllocShared) -> bool {
    shared.is_finished()
}

impl AllocManager {
    fn shared(&self, alloc_id: &str) -> Result<Arc<AllocShared>, LifecycleError> {
        lock(&self.runners)
            .get(alloc_id)
            .map(|runner| Arc::clone(&runner.shared))
            .ok_or_else(|| LifecycleError::UnknownAlloc(alloc_id.to_string()))
    }

    /// The driver and handle of `task` if it runs now.
    fn running(&self, shared: &AllocShared, task: &Task) -> Option<(Arc<dyn Driver>, TaskHandle)> {
        let local = shared.task(&task.name);
        if local.state.state != TASK_STATE_RUNNING {
            return None;
        }
        Some((self.ctx.drivers.get(&task.driver)?.clone(), local.handle?))
    }

    /// `task` (every task when empty) of the allocation, or `Task not found`.
    fn targets(shared: &AllocShared, task: &str) -> Result<Vec<Task>, LifecycleError> {
        let tasks = job_tasks(shared);
        if task.is_empty() {
            return Ok(tasks);
        }
        let found: Vec<Task> = tasks.into_iter().filter(|t| t.name == task).collect();
        match found.is_empty() {
            true => Err(LifecycleError::TaskNotFound),
            false => Ok(found),
        }
    }

    /// Sends `signal` to `task`, or to every running task when `task` is
    /// empty, recording `Signaling` first.
    pub async fn signal(
        &self,
        alloc_id: &str,
        task: &str,
        signal: &str,
    ) -> Result<(), LifecycleError> {
        let parsed =
            parse_signal(signal).map_err(|_| LifecycleError::InvalidSignal(signal.to_string()))?;
        let shared = self.shared(alloc_id)?;
        let targets = Self::targets(&shared, task)?;
        let mut signaled = 0;
        let mut first_error = None;
        for target in &targets {
            let Some((driver, handle)) = self.running(&shared, target) else {
                continue;
            };
            shared.with_task(&target.name, |local| {
                events::record(&mut local.state, events::signaling(parsed.as_str(), ""));
            });
            match driver.signal(&handle, parsed.as_str()).await {
                Ok(()) => signaled += 1,
                Err(DriverError::NotFound) => {}
                Err(error) => {
                    first_error.get_or_insert(LifecycleError::Driver(error));
                }
            }
        }
        match (first_error, signaled) {
            (Some(error), _) => Err(error),
            (None, 0) => Err(LifecycleError::TaskNotRunning),
            (None, _) => Ok(()),
        }
    }

    /// Restarts `task`, or every running task when `task` is empty,
    /// without counting against the restart policy. `all` (Nomad's
    /// `AllTasks`) only changes the reason recorded: tasks already dead
    /// are not run again.
    pub async fn restart(
        &self,
        alloc_id: &str,
        task: &str,
        all: bool,
    ) -> Result<(), LifecycleError> {
        if all && !task.is_empty() {
            return Err(LifecycleError::TaskNameWithAllTasks);
        }
        let shared = self.shared(alloc_id)?;
        let reason = match (task.is_empty(), all) {
            (false, _) => REASON_RESTART_TASK,
            (true, true) => REASON_RESTART_ALL,
            (true, false) => REASON_RESTART_RUNNING,
        };
        let mut replies = Vec::new();
        for target in Self::targets(&shared, task)? {
            if self.running(&shared, &target).is_none() {
                continue;
            }
            let Some(sender) = shared.restarts.get(&target.name) else {
                continue;
            };
            let (reply, answer) = oneshot::channel();
            let request = RestartRequest {
                reason: reason.to_string(),
                reply,
            };
            if sender.send(request).is_ok() {
                replies.push(answer);
            }
        }
        if replies.is_empty() {
            return Err(LifecycleError::TaskNotRunning);
        }
        for answer in futures::future::join_all(replies).await {
            // A runner gone before answering had no running task left.
            answer.unwrap_or(Err(LifecycleError::TaskNotRunning))?;
        }
        Ok(())
    }

    /// Destroys a terminal allocation's runner and directory now (Nomad's
    /// forced collection); a live one is refused.
    pub async fn collect(&self, alloc_id: &str) -> Result<(), LifecycleError> {
        let shared = {
            let mut runners = lock(&self.runners);
            let runner = runners
                .get(alloc_id)
                .ok_or_else(|| LifecycleError::UnknownAlloc(alloc_id.to_string()))?;
            if !terminal(&runner.shared) {
                return Err(LifecycleError::NotTerminal(alloc_id.to_string()));
            }
            // Remembered so the servers' next answer, which still lists
            // it, does not bring it back.
            lock(&self.collected).insert(alloc_id.to_string());
            runners.remove(alloc_id).map(|runner| runner.shared)
        };
        tracing::info!(
            alloc_id,
            reason = "forced collection",
            "garbage collecting allocation"
        );
        if let Some(shared) = shared {
            destroy(shared).await;
        }
        Ok(())
    }

    /// Terminal allocations, with when their last task ended (what the
    /// periodic collection chooses from).
    pub fn collectable(&self) -> Vec<crate::gc::Candidate> {
        lock(&self.runners)
            .iter()
            .filter(|(_, runner)| terminal(&runner.shared))
            .map(|(id, runner)| crate::gc::Candidate {
                id: id.clone(),
                ended: runner
                    .shared
                    .task_states()
                    .values()
                    .filter_map(|task| task.state.finished_at)
                    .filter_map(|at| at.timestamp_nanos_opt())
                    .max()
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Collects every terminal allocation (Nomad's forced full node
    /// collection); returns how many.
    pub async fn collect_all(&self) -> usize {
        let collected: Vec<Arc<AllocShared>> = {
            let mut runners = lock(&self.runners);
            let ids: Vec<String> = runners
                .iter()
                .filter(|(_, runner)| terminal(&runner.shared))
                .map(|(id, _)| id.clone())
                .collect();
            lock(&self.collected).extend(ids.iter().cloned());
            ids.iter()
                .filter_map(|id| runners.remove(id).map(|runner| runner.shared))
                .collect()
        };
        tracing::info!(
            allocs = collected.len(),
            reason = "forced full node collection",
            "garbage collecting allocations"
        );
        let count = collected.len();
        futures::future::join_all(collected.into_iter().map(destroy)).await;
        count
    }

    /// What the running tasks (or only `task`) use, from two readings
    /// [`SAMPLE_WINDOW`] apart.
    /// The driver `task` of `alloc_id` runs with (the ACL asks more of
    /// a command run in a raw_exec task: it is not isolated).
    pub fn task_driver(&self, alloc_id: &str, task: &str) -> Result<String, LifecycleError> {
        let shared = self.shared(alloc_id)?;
        let targets = Self::targets(&shared, task)?;
        match targets.as_slice() {
            [only] if !task.is_empty() => Ok(only.driver.clone()),
            _ => Err(LifecycleError::TaskNotFound),
        }
    }

    /// Whether `task` of `alloc_id` runs, so a command could be run in it
    /// (checked before a websocket is upgraded, to answer with a status).
    pub fn check_running(&self, alloc_id: &str, task: &str) -> Result<(), LifecycleError> {
        let shared = self.shared(alloc_id)?;
        let targets = Self::targets(&shared, task)?;
        let [target] = targets.as_slice() else {
            return Err(LifecycleError::TaskNotFound);
        };
        self.running(&shared, target)
            .map(|_| ())
            .ok_or(LifecycleError::TaskNotRunning)
    }

    /// Runs a command inside the running `task` (`nomad alloc exec`).
    pub async fn exec(
        &self,
        alloc_id: &str,
        task: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, LifecycleError> {
        let shared = self.shared(alloc_id)?;
        let targets = Self::targets(&shared, task)?;
        let [target] = targets.as_slice() else {
            return Err(LifecycleError::TaskNotFound);
        };
        let (driver, handle) = self
            .running(&shared, target)
            .ok_or(LifecycleError::TaskNotRunning)?;
        match driver.exec(&handle, request).await {
            Err(DriverError::NotFound) => Err(LifecycleError::TaskNotRunning),
            other => Ok(other?),
        }
    }

    pub async fn stats(
        &self,
        alloc_id: &str,
        task: &str,
    ) -> Result<AllocResourceUsage, LifecycleError> {
        let shared = self.shared(alloc_id)?;
        let targets: Vec<(String, Arc<dyn Driver>, TaskHandle)> = Self::targets(&shared, task)?
            .iter()
            .filter_map(|target| {
                let (driver, handle) = self.running(&shared, target)?;
                Some((target.name.clone(), driver, handle))
            })
            .collect();
        let read = || {
            futures::future::join_all(
                targets
                    .iter()
                    .map(|(_, driver, handle)| driver.usage(handle)),
            )
        };
        let first_at = Instant::now();
        let first = read().await;
        tokio::time::sleep(SAMPLE_WINDOW).await;
        let elapsed = first_at.elapsed();
        let second = read().await;
        let mhz = (self.ctx.node)()
            .attributes
            .get("cpu.frequency")
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0);
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut tasks = BTreeMap::new();
        for ((name, _, _), (before, after)) in targets.iter().zip(first.into_iter().zip(second)) {
            // A task that stopped meanwhile (or a driver that cannot
            // measure) has no usage to show.
            if let (Ok(before), Ok(after)) = (before, after) {
                tasks.insert(name.clone(), task_usage(&before, &after, elapsed, mhz, now));
            }
        }
        Ok(alloc_usage(tasks, now))
    }
}

/// Has the runner remove the allocation's directory and state, and waits
/// for it (a bounded time).
async fn destroy(shared: Arc<AllocShared>) {
    shared.request_destroy();
    let mut done = shared.done.subscribe();
    if tokio::time::timeout(DESTROY_LIMIT, done.wait_for(|done| *done))
        .await
        .is_err()
    {
        tracing::warn!(alloc_id = %shared.id, "collecting the allocation is taking long");
    }
}

impl TaskRunner {
    /// Answers every waiting restart: no instance runs to take it.
    pub(super) fn refuse_restarts(&mut self) {
        while let Ok(request) = self.restarts.try_recv() {
            let _ = request.reply.send(Err(LifecycleError::TaskNotRunning));
        }
    }

    /// A restart asked for through the API: `Restart Signaled`, the
    /// instance stopped as a kill would, `Terminated`, then `Restarting`
    /// at once. The restart policy is not consulted and counts nothing.
    pub(super) async fn restart_task(
        &self,
        driver: &dyn Driver,
        task: &Task,
        handle: &TaskHandle,
        request: RestartRequest,
    ) -> UserRestart {
        self.update(|state| events::record(state, events::restart_signaled(&request.reason)));
        if let Err(error) = self.stop_instance(driver, task, handle).await {
            let _ = request.reply.send(Err(LifecycleError::Driver(error)));
            return UserRestart::Failed;
        }
        let exit = driver.wait(handle).await.ok();
        // Saved before the driver forgets the exit, as after any exit.
        self.shared.with_task(&self.name, |local| {
            if let Some(exit) = &exit {
                events::record(&mut local.state, events::terminated(exit));
            }
            local.handle = None;
            // No reason: Nomad shows a user's restart as the bare delay.
            let restart = Decision::Restart {
                delay: Duration::ZERO,
                reason: String::new(),
            };
            record_decision(local, &restart);
        });
        let _ = driver.destroy(handle).await;
        let _ = request.reply.send(Ok(()));
        // A kill that came during the restart wins: nothing starts again.
        if self.kill.borrow().is_some() {
            self.finish(Some(events::killed(None)), false);
            return UserRestart::Killed;
        }
        UserRestart::Done
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
