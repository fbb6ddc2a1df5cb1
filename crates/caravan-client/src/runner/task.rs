//! The task runner: one task of an allocation through its life (scheduling.md
//! §8.3): `Received`, `Task Setup`, the driver's start, `Started`, the wait,
//! `Terminated`, then the restart decision; or, when told to, `Killing`,
//! the driver's stop and `Killed`. Every change is recorded in the
//! allocation's shared state, which persists it and reports it.
//!
//! Two orders keep a client killed at any point from running a task twice:
//! the start's attempt is saved before the driver starts the task (a
//! restored runner asks the driver to find that start rather than make
//! another), and a task's exit, with what the runner decided from it, is
//! saved before the driver is told to forget the exit.

use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::alloc::{
    TaskEvent, TASK_STATE_DEAD, TASK_STATE_PENDING, TASK_STATE_RUNNING,
};
use caravan_api_types::job::{Job, RestartPolicy, Task, TaskGroup};
use caravan_drivers::{Driver, DriverError, ExitResult, StartAttempt, TaskConfig, TaskHandle};
use tokio::sync::{mpsc, watch};

use super::alloc::{AllocShared, Phase};
use super::env::{interpolate_config, task_env, EnvInputs, TaskPaths};
use super::events;
use super::lifecycle::{LifecycleError, RestartRequest, UserRestart};
use super::restart::{Decision, Outcome, RestartTracker};
use super::state::LocalTask;
use super::RunnerContext;

/// Why a task is being killed, and the event that says so first.
#[derive(Debug, Clone, Default)]
pub struct Kill {
    /// Shown as the `Killing` event's display message when not empty.
    pub reason: String,
    /// Recorded before `Killing` (a sibling failed, the leader died, ...).
    pub event: Option<caravan_api_types::alloc::TaskEvent>,
}

/// What a restored runner found of its task.
enum Recovery {
    /// It runs (or exited since), through this handle.
    Running(TaskHandle),
    /// Nothing of it runs, with the driver's reason when it gave one.
    Gone(Option<DriverError>),
    /// A start whose handle was not saved could not be settled: it may
    /// still launch the task.
    Unsettled(DriverError),
}

pub(super) struct TaskRunner {
    pub name: String,
    pub shared: Arc<AllocShared>,
    pub ctx: Arc<RunnerContext>,
    pub kill: watch::Receiver<Option<Kill>>,
    /// Restarts asked for through the API; only a running instance takes
    /// one, any other moment answers `Task not running`.
    pub restarts: mpsc::UnboundedReceiver<RestartRequest>,
    /// The client restarted: recover the task instead of starting it.
    pub restore: bool,
}

/// Which gate a task waits for before it starts.
pub(super) fn phase_of(task: &Task) -> Phase {
    match task.lifecycle.as_ref().map(|hook| hook.hook.as_str()) {
        Some("prestart") => Phase::Prestart,
        Some("poststart") => Phase::Poststart,
        Some("poststop") => Phase::Poststop,
        _ => Phase::Main,
    }
}

/// The task's policy: its own (already merged with the group's by the
/// server), else the group's, else the type's default.
fn restart_policy(job: &Job, group: &TaskGroup, task: &Task) -> RestartPolicy {
    task.restart_policy
        .clone()
        .or_else(|| group.restart_policy.clone())
        .unwrap_or_else(|| match job.job_type.as_str() {
            "batch" | "sysbatch" => RestartPolicy::default_batch(),
            _ => RestartPolicy::default_service(),
        })
}

/// Whether a successful exit is restarted (Nomad's `onSuccess`).
/// The lifecycle decides before the job type, as in Nomad.
fn restarts_on_success(job: &Job, task: &Task) -> bool {
    match task.lifecycle.as_ref() {
        Some(hook) if hook.hook == "poststop" => false,
        Some(hook) if !hook.hook.is_empty() => hook.sidecar,
        _ => !matches!(job.job_type.as_str(), "batch" | "sysbatch"),
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

impl TaskRunner {
    pub async fn run(mut self) {
        let alloc = self.shared.alloc();
        let Some((job, group, task)) = alloc.job.as_ref().and_then(|job| {
            let group = job.group(&alloc.task_group)?;
            let task = group.task(&self.name)?;
            Some((Arc::clone(job), group.clone(), task.clone()))
        }) else {
            self.finish(
                Some(events::setup_failure("task not found in the job")),
                true,
            );
            return;
        };
        let local = self.shared.task(&self.name);
        if local.run_complete {
            return;
        }
        let driver = self.ctx.drivers.get(&task.driver).cloned();
        let mut running = None;
        if self.restore {
            let recovered = self
                .reattach(
                    local.handle.clone(),
                    local.starting.clone(),
                    driver.as_deref(),
                )
                .await;
            match recovered {
                Recovery::Running(handle) => running = Some(handle),
                // Nothing of it runs: it starts again only once the
                // servers say they still want it.
                Recovery::Gone(error) => {
                    if !self.wait_for_server(error.as_ref()).await {
                        return;
                    }
                }
                // The lost start may yet launch the task: another start
                // could run it twice, so the task fails here instead.
                Recovery::Unsettled(error) => {
                    let text = format!(
                        "cannot tell whether an earlier start of the task runs: {error}; not starting it again"
                    );
                    self.finish(Some(events::driver_failure(&text)), true);
                    return;
                }
            }
        }
        if running.is_none() {
            if local.state.events.as_ref().is_none_or(Vec::is_empty) {
                self.update(|state| {
                    state.state = TASK_STATE_PENDING.to_string();
                    events::record(state, events::received());
                });
            }
            if !self.wait_for_phase(phase_of(&task)).await {
                self.finish(None, false);
                return;
            }
        }
        let Some(driver) = driver else {
            let text = format!("driver {:?} is not available on this node", task.driver);
            self.finish(Some(events::driver_failure(&text)), true);
            return;
        };
        let mut tracker = RestartTracker::new(
            restart_policy(&job, &group, &task),
            restarts_on_success(&job, &task),
            now_nanos(),
        );
        // A restored task's directory was built before the restart.
        let mut set_up = self.restore;
        loop {
            let handle = match running.take() {
                Some(handle) => handle,
                None => {
                    if !set_up {
                        self.update(|state| events::record(state, events::task_setup()));
                        set_up = true;
                    }
                    match self.start(&*driver, &job, &group, &task).await {
                        Ok(handle) => handle,
                        Err(error) => {
                            let recoverable = !matches!(
                                error,
                                DriverError::InvalidConfig(_) | DriverError::Unsupported(_)
                            );
                            let decision = tracker.decide(
                                Outcome::StartError { recoverable },
                                now_nanos(),
                                rand::random(),
                            );
                            self.shared.with_task(&self.name, |local| {
                                let failure = events::driver_failure(&error.to_string());
                                events::record(&mut local.state, failure);
                                record_decision(local, &decision);
                            });
                            if self.follow(decision).await {
                                continue;
                            }
                            return;
                        }
                    }
                }
            };
            let exit = tokio::select! {
                exit = driver.wait(&handle) => exit,
                kill = wait_kill(&mut self.kill) => {
                    self.kill_task(&*driver, &task, &handle, kill).await;
                    return;
                }
                Some(request) = self.restarts.recv() => {
                    match self.restart_task(&*driver, &task, &handle, request).await {
                        UserRestart::Done => continue,
                        UserRestart::Failed => {
                            // Still running: keep watching this instance
                            // rather than start a second one.
                            running = Some(handle);
                            continue;
                        }
                        UserRestart::Killed => return,
                    }
                }
            };
            // Restarts asked for while this instance was exiting are too
            // late for it.
            self.refuse_restarts();
            let exit = exit.unwrap_or_else(|error| {
                tracing::warn!(alloc_id = %self.shared.id, task = %self.name, %error, "lost track of the task");
                ExitResult {
                    exit_code: -1,
                    ..ExitResult::default()
                }
            });
            let outcome = match exit.successful() {
                true => Outcome::Success,
                false => Outcome::Failure,
            };
            let decision = tracker.decide(outcome, now_nanos(), rand::random());
            // One save of the exit and what follows from it, before the
            // driver forgets the exit: a client killed in between finds
            // the task finished or due for its restart, not a handle whose
            // exit is gone (which it would take for a task to start again).
            self.shared.with_task(&self.name, |local| {
                events::record(&mut local.state, events::terminated(&exit));
                local.handle = None;
                record_decision(local, &decision);
            });
            let _ = driver.destroy(&handle).await;
            if !self.follow(decision).await {
                return;
            }
        }
    }

    /// After a restart: the task's instance, through its saved handle or,
    /// when the client was killed before it could save one, through the
    /// start it had asked for.
    async fn reattach(
        &self,
        handle: Option<TaskHandle>,
        starting: Option<StartAttempt>,
        driver: Option<&dyn Driver>,
    ) -> Recovery {
        let Some(driver) = driver else {
            return Recovery::Gone(None);
        };
        let handle = match (handle, starting) {
            (Some(handle), _) => handle,
            (None, Some(attempt)) => match driver.find(&attempt).await {
                Ok(Some(handle)) => {
                    tracing::info!(alloc_id = %self.shared.id, task = %self.name, "found a task whose start was not saved");
                    self.record_started(&handle);
                    handle
                }
                Ok(None) => {
                    // The start never happened and now never will: the
                    // attempt is settled.
                    self.shared
                        .with_task(&self.name, |local| local.starting = None);
                    return Recovery::Gone(None);
                }
                Err(error) => {
                    tracing::warn!(alloc_id = %self.shared.id, task = %self.name, %error, "cannot settle a start whose handle was not saved");
                    return Recovery::Unsettled(error);
                }
            },
            (None, None) => return Recovery::Gone(None),
        };
        match driver.recover(&handle).await {
            Ok(()) => Recovery::Running(handle),
            Err(error) => {
                tracing::info!(alloc_id = %self.shared.id, task = %self.name, %error, "task not recovered");
                Recovery::Gone(Some(error))
            }
        }
    }

    /// Builds the task's directory and environment and starts it.
    async fn start(
        &self,
        driver: &dyn Driver,
        job: &Job,
        group: &TaskGroup,
        task: &Task,
    ) -> Result<TaskHandle, DriverError> {
        let alloc = self.shared.alloc();
        let dir = &self.shared.dir;
        let task_dir = dir.build_task(&task.name)?;
        let node = (self.ctx.node)();
        let env = task_env(&EnvInputs {
            alloc: &alloc,
            job,
            group,
            task,
            node: &node,
            region: &self.ctx.region,
            paths: TaskPaths {
                alloc_dir: dir.root(),
                task_dir: &task_dir,
            },
            host_env: &self.ctx.host_env,
        });
        let empty = Default::default();
        let config = interpolate_config(task.config.as_ref().unwrap_or(&empty), &env, &node);
        let resources = alloc
            .allocated_resources
            .as_ref()
            .and_then(|resources| resources.tasks.get(&task.name));
        let clamp = |value: i64| u64::try_from(value).unwrap_or(0);
        let config = TaskConfig {
            id: format!("{}/{}", alloc.id, task.name),
            alloc_id: alloc.id.clone(),
            task_name: task.name.clone(),
            job_name: job.name.clone(),
            config,
            env,
            user: task.user.clone(),
            task_dir,
            alloc_dir: dir.root().to_path_buf(),
            logs: caravan_drivers::LogConfig {
                dir: dir.logs(),
                max_files: u32::try_from(task.log_config.max_files.max(1)).unwrap_or(10),
                max_file_size_mb: clamp(task.log_config.max_file_size_mb.max(1)),
            },
            resources: caravan_drivers::TaskResources {
                cpu: clamp(resources.map_or(task.resources.cpu, |r| r.cpu.cpu_shares)),
                memory_mb: clamp(
                    resources.map_or(task.resources.memory_mb, |r| r.memory.memory_mb),
                ),
                memory_max_mb: clamp(
                    resources.map_or(task.resources.memory_max_mb, |r| r.memory.memory_max_mb),
                ),
            },
            attempt: uuid::Uuid::new_v4().simple().to_string(),
            // Host volumes: resolved from the group's `volume` blocks. A
            // mount this node cannot serve fails the start for good.
            mounts: super::volumes::task_mounts(group, task, &node)
                .map_err(DriverError::InvalidConfig)?,
        };
        let attempt = StartAttempt::of(driver.name(), &config);
        // Without the attempt on disk, a client killed during the start
        // would not look for it and would start the task a second time.
        if let Err(error) = self
            .shared
            .try_with_task(&self.name, move |local| local.starting = Some(attempt))
        {
            self.shared
                .with_task(&self.name, |local| local.starting = None);
            return Err(DriverError::Start(format!(
                "not starting the task: its start could not be saved first: {error}"
            )));
        }
        match driver.start(config).await {
            Ok(handle) => {
                self.record_started(&handle);
                Ok(handle)
            }
            Err(error) => {
                self.shared
                    .with_task(&self.name, |local| local.starting = None);
                Err(error)
            }
        }
    }

    /// Saves the handle of a started task (the start is settled) and
    /// records it running.
    fn record_started(&self, handle: &TaskHandle) {
        let started = handle.clone();
        self.shared.with_task(&self.name, move |local| {
            local.handle = Some(started);
            local.starting = None;
            local.state.state = TASK_STATE_RUNNING.to_string();
            if local.state.started_at.is_none() {
                local.state.started_at = Some(chrono::Utc::now());
            }
            events::record(&mut local.state, events::started());
        });
    }

    /// Follows a restart decision already recorded ([`record_decision`]):
    /// `true` when the task should start again, after its delay.
    async fn follow(&mut self, decision: Decision) -> bool {
        let Decision::Restart { delay, .. } = decision else {
            return false;
        };
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                _ = wait_kill(&mut self.kill) => {
                    self.finish(None, false);
                    return false;
                }
                Some(request) = self.restarts.recv() => {
                    let _ = request.reply.send(Err(LifecycleError::TaskNotRunning));
                }
            }
        }
    }

    /// Stops the instance with the task's kill signal and timeout, then
    /// SIGKILL if that failed.
    pub(super) async fn stop_instance(
        &self,
        driver: &dyn Driver,
        task: &Task,
        handle: &TaskHandle,
    ) -> Result<(), DriverError> {
        let signal = match task.kill_signal.is_empty() {
            true => driver.default_kill_signal(),
            false => task.kill_signal.as_str(),
        };
        let stopped = driver.stop(handle, signal, self.kill_timeout(task)).await;
        if let Err(error) = &stopped {
            // An unknown kill signal (not checked at submission, as in
            // Nomad) or a failed stop must not leave the task running.
            tracing::warn!(alloc_id = %self.shared.id, task = %self.name, %error, "stopping the task failed; killing it");
            if driver.stop(handle, "SIGKILL", Duration::ZERO).await.is_ok() {
                return Ok(());
            }
        }
        stopped
    }

    fn kill_timeout(&self, task: &Task) -> Duration {
        Duration::from_nanos(u64::try_from(task.kill_timeout).unwrap_or(0))
            .min(self.ctx.max_kill_timeout)
    }

    async fn kill_task(&self, driver: &dyn Driver, task: &Task, handle: &TaskHandle, kill: Kill) {
        let timeout = self.kill_timeout(task);
        self.update(|state| {
            if let Some(event) = kill.event.clone() {
                events::record(state, event);
            }
            events::record(state, events::killing(timeout, &kill.reason));
        });
        let stopped = self.stop_instance(driver, task, handle).await;
        let exit = driver.wait(handle).await.ok();
        let error = stopped.err().map(|error| error.to_string());
        // Saved before the driver forgets the exit, as after any exit.
        self.shared.with_task(&self.name, |local| {
            if let Some(exit) = &exit {
                events::record(&mut local.state, events::terminated(exit));
            }
            finished(local, Some(events::killed(error.as_deref())), false);
        });
        let _ = driver.destroy(handle).await;
    }

    /// After a failed recovery: the task waits (`Failed Restoring Task`)
    /// until the servers' current view of the allocation has been applied,
    /// and runs again only if they still want it (Nomad #17424). `true`
    /// when it should start.
    async fn wait_for_server(&mut self, error: Option<&DriverError>) -> bool {
        self.update(|state| {
            state.state = TASK_STATE_PENDING.to_string();
            if let Some(error) = error {
                events::record(state, events::failed_restoring(&error.to_string()));
            }
        });
        self.shared
            .with_task(&self.name, |local| local.handle = None);
        let mut synced = self.shared.synced.subscribe();
        tokio::select! {
            _ = synced.wait_for(|synced| *synced) => {}
            _ = wait_kill(&mut self.kill) => {
                self.finish(None, false);
                return false;
            }
        }
        let alloc = self.shared.alloc();
        if alloc.server_terminal() || alloc.client_terminal() {
            self.finish(None, false);
            return false;
        }
        true
    }

    /// Waits for the allocation to open `phase`; `false` when killed first.
    async fn wait_for_phase(&mut self, phase: Phase) -> bool {
        let mut gate = self.shared.phase.subscribe();
        let opened = tokio::select! {
            // A kill made with the gate's opening wins: the task must not
            // start only to be killed.
            biased;
            _ = wait_kill(&mut self.kill) => false,
            opened = gate.wait_for(|open| *open >= phase) => opened.is_ok(),
        };
        opened && self.kill.borrow().is_none()
    }

    /// The task is dead for good.
    pub(super) fn finish(&self, event: Option<TaskEvent>, failed: bool) {
        self.shared
            .with_task(&self.name, move |local| finished(local, event, failed));
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut caravan_api_types::alloc::TaskState)) {
        self.shared
            .with_task(&self.name, move |local| change(&mut local.state));
    }
}

/// Marks `local` dead for good, with `event` last.
fn finished(local: &mut LocalTask, event: Option<TaskEvent>, failed: bool) {
    if let Some(event) = event {
        events::record(&mut local.state, event);
    }
    local.state.state = TASK_STATE_DEAD.to_string();
    local.state.failed |= failed;
    local.state.finished_at = Some(chrono::Utc::now());
    local.run_complete = true;
    local.handle = None;
    local.starting = None;
}

/// Records a restart decision: `Restarting` and pending, or dead for good.
pub(super) fn record_decision(local: &mut LocalTask, decision: &Decision) {
    match decision {
        Decision::Restart { delay, reason } => {
            events::record(&mut local.state, events::restarting(*delay, reason));
            local.state.state = TASK_STATE_PENDING.to_string();
            local.state.restarts += 1;
            local.state.last_restart = Some(chrono::Utc::now());
        }
        Decision::Fail { reason } => finished(local, Some(events::not_restarting(reason)), true),
        Decision::Done => finished(local, None, false),
    }
}

/// Resolves with the kill request once one is made (never, if the sender
/// is gone without one).
async fn wait_kill(kill: &mut watch::Receiver<Option<Kill>>) -> Kill {
    loop {
        if let Some(request) = kill.borrow_and_update().clone() {
            return request;
        }
        if kill.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
