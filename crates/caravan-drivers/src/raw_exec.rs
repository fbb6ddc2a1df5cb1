//! raw_exec: runs a command as the client's user (or `user`, when the
//! client is root), without isolation, under an executor process
//! ([`crate::executor`]) that outlives the client. The handle records the
//! executor's and the task's pids with their start times, so a later
//! client can tell them from processes that reused the numbers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::executor_client::{
    self as client, command_and_args, executor_spec, prepare_state_dir, state_of, ExecutorTask,
    KILL_LIMIT,
};
use crate::signal::parse_signal;
use crate::{
    proc, Driver, DriverError, ExitResult, Fingerprint, StartAttempt, TaskConfig, TaskHandle,
};

/// The driver's name in jobspecs and node attributes.
pub const NAME: &str = "raw_exec";

/// The driver's files, under the task directory.
pub const STATE_DIR: &str = ".caravan";

/// How long the executor may take to record the exit once the task's
/// group is gone (it drains the logs first).
const RECORD_LIMIT: Duration = Duration::from_secs(10);

mod claim;
mod mounts;

use mounts::link_mounts;

/// The raw_exec driver.
#[derive(Debug, Clone)]
pub struct RawExec {
    executor_binary: PathBuf,
    enabled: bool,
}

/// [`TaskHandle::state`] of a raw_exec task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExecState {
    pub executor_pid: i32,
    /// `/proc/<pid>/stat` field 22 of the executor.
    pub executor_start_time: u64,
    /// The task's pid, which is also its process group.
    pub task_pid: i32,
    pub task_start_time: u64,
    /// The session the task's group is in (the executor's).
    pub session: i32,
    /// `<task_dir>/.caravan`: spec, start report, exit record, executor
    /// log, the claim files of the starts made in it.
    pub state_dir: PathBuf,
    /// Where the executor records the exit.
    pub exit_file: PathBuf,
}

impl RawExecState {
    /// The handle the runner keeps for the started task (whether this
    /// client started it or found its start after a restart).
    pub(crate) fn into_handle(self, task_id: String) -> std::io::Result<TaskHandle> {
        client::into_handle(NAME, task_id, &self)
    }
}

impl ExecutorTask for RawExecState {
    fn executor(&self) -> (i32, u64) {
        (self.executor_pid, self.executor_start_time)
    }

    fn exit_file(&self) -> &Path {
        &self.exit_file
    }

    fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    async fn kill(&self) -> Result<(), DriverError> {
        kill_group(self).await
    }
}

impl RawExec {
    /// `executor_binary` is run as `<executor_binary> executor <spec>`
    /// (the `caravan` binary itself). A disabled driver fingerprints as
    /// undetected and refuses to start tasks.
    pub fn new(executor_binary: PathBuf, enabled: bool) -> Self {
        Self {
            executor_binary,
            enabled,
        }
    }

    async fn start_task(&self, config: TaskConfig) -> Result<TaskHandle, DriverError> {
        if !self.enabled {
            return Err(DriverError::Start(
                "the raw_exec driver is disabled on this node".into(),
            ));
        }
        let command = command_and_args(&config.config, NAME)?;
        link_mounts(&config.task_dir, &config.mounts)?;
        let claim_file = client::claim_name(&config.attempt)?;
        let state_dir = prepare_state_dir(&config.task_dir)?;
        let spec = executor_spec(&config, command, config.env.clone(), &state_dir, claim_file);
        let state =
            client::start_executor(&self.executor_binary, &state_dir, &config.attempt, &spec)
                .await?;
        Ok(state.into_handle(config.id)?)
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let state: RawExecState = state_of(handle, NAME)?;
        client::wait_exit(&state).await
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let signal = parse_signal(signal)?;
        let state: RawExecState = state_of(handle, NAME)?;
        if signal_group(&state, signal)? && !group_gone_within(&state, timeout).await {
            kill_group(&state).await?;
        }
        client::await_exit_record(&state, RECORD_LIMIT).await
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state: RawExecState = state_of(handle, NAME)?;
        if client::watched(&state)? {
            return Ok(());
        }
        // The executor is gone without recording an exit (killed with the
        // client, or the node rebooted): whatever is left of the task runs
        // unwatched and its output goes nowhere.
        kill_group(&state).await?;
        Err(DriverError::NotFound)
    }

    async fn destroy_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state: RawExecState = state_of(handle, NAME)?;
        client::kill_unless_exited(&state).await?;
        client::remove_state_dir(&state)
    }
}

impl Driver for RawExec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        let fingerprint = if self.enabled {
            Fingerprint {
                detected: true,
                healthy: true,
                description: "Healthy".to_string(),
                attributes: [("driver.raw_exec".to_string(), "true".to_string())].into(),
            }
        } else {
            Fingerprint {
                detected: false,
                healthy: false,
                description: "disabled".to_string(),
                attributes: Default::default(),
            }
        };
        Box::pin(std::future::ready(fingerprint))
    }

    fn start(&self, config: TaskConfig) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(self.start_task(config))
    }

    fn wait<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<ExitResult, DriverError>> {
        Box::pin(self.wait_task(handle))
    }

    fn stop<'a>(
        &'a self,
        handle: &'a TaskHandle,
        signal: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.stop_task(handle, signal, timeout))
    }

    fn signal<'a>(
        &'a self,
        handle: &'a TaskHandle,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let signal = parse_signal(signal)?;
            let state: RawExecState = state_of(handle, NAME)?;
            if signal_group(&state, signal)? {
                Ok(())
            } else {
                Err(DriverError::NotFound)
            }
        })
    }

    fn find<'a>(
        &'a self,
        attempt: &'a StartAttempt,
    ) -> BoxFuture<'a, Result<Option<TaskHandle>, DriverError>> {
        Box::pin(self.find_task(attempt))
    }

    fn recover<'a>(&'a self, handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.recover_task(handle))
    }

    fn destroy<'a>(&'a self, handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.destroy_task(handle))
    }

    /// As the task's process: its environment, directory and user.
    fn exec<'a>(
        &'a self,
        handle: &'a TaskHandle,
        request: crate::ExecRequest,
    ) -> BoxFuture<'a, Result<crate::ExecSession, DriverError>> {
        Box::pin(async move {
            let state: RawExecState = state_of(handle, NAME)?;
            crate::session::exec_in_process(
                state.task_pid,
                state.task_start_time,
                &request,
                crate::session::Join::Host,
            )
        })
    }

    fn usage<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<crate::TaskUsage, DriverError>> {
        Box::pin(async move {
            let state: RawExecState = state_of(handle, NAME)?;
            // The group check keeps an unrelated group that took the
            // number after ours was gone from being measured.
            if !group_running(&state) {
                return Err(DriverError::NotFound);
            }
            Ok(crate::usage::group_usage(state.task_pid, state.session))
        })
    }
}

fn group_running(state: &RawExecState) -> bool {
    !proc::running_group_members(state.task_pid, state.session).is_empty()
}

/// Signals the task's group; `false` when nothing of it runs.
fn signal_group(state: &RawExecState, signal: Signal) -> Result<bool, DriverError> {
    // The check keeps a signal from reaching an unrelated group that took
    // the number after ours was gone.
    if !group_running(state) {
        return Ok(false);
    }
    client::signal_running_group(state.task_pid, signal)
}

async fn group_gone_within(state: &RawExecState, limit: Duration) -> bool {
    client::gone_within(limit, || !group_running(state)).await
}

/// SIGKILLs the task's group and waits for it to be gone.
async fn kill_group(state: &RawExecState) -> Result<(), DriverError> {
    if signal_group(state, Signal::SIGKILL)? && !group_gone_within(state, KILL_LIMIT).await {
        return Err(std::io::Error::other(format!(
            "processes of task group {} still run {KILL_LIMIT:?} after SIGKILL",
            state.task_pid
        ))
        .into());
    }
    Ok(())
}
