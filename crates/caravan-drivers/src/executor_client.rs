//! What the drivers that run tasks under an executor ([`crate::executor`])
//! share: the files in the task's state directory, writing the spec and
//! running the executor until it reports the start, reading the exit
//! record, and the waits, checks and kills around them.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::executor::ExitRecord;
use crate::{proc, DriverError, ExitResult, TaskHandle};

mod start;

#[cfg(test)]
pub(crate) use start::tests;
pub(crate) use start::{
    claim_name, command_and_args, executor_spec, kill_executor_session, prepare_state_dir,
    report_of, start_executor,
};

/// The executor's files, in the state directory: the spec of a start
/// without an attempt, the start report, the exit record, the log.
pub(crate) const SPEC_FILE: &str = "executor.json";
pub(crate) const START_FILE: &str = "executor.started.json";
pub(crate) const EXIT_FILE: &str = "executor.exit.json";
pub(crate) const EXECUTOR_LOG: &str = "executor.log";

/// How long an executor may take to report that the task started.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(30);
/// How long processes may take to vanish after SIGKILL.
pub(crate) const KILL_LIMIT: Duration = Duration::from_secs(10);

/// A task running under an executor, as its driver's handle state
/// describes it.
pub(crate) trait ExecutorTask: Sync {
    /// The executor's pid and `/proc/<pid>/stat` start time.
    fn executor(&self) -> (i32, u64);
    /// Where the executor records the exit.
    fn exit_file(&self) -> &Path;
    /// `<task_dir>/.caravan`.
    fn state_dir(&self) -> &Path;
    /// SIGKILLs whatever of the task runs and waits for it to be gone.
    fn kill(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
}

/// Whether the task's executor still runs.
pub(crate) fn executor_running(task: &impl ExecutorTask) -> bool {
    let (pid, start_time) = task.executor();
    proc::is_running(pid, start_time)
}

/// How the task ended, once its executor recorded it; a task whose
/// executor is gone without a record is killed and not found.
pub(crate) async fn wait_exit(task: &impl ExecutorTask) -> Result<ExitResult, DriverError> {
    let mut backoff = Backoff::new();
    loop {
        if let Some(exit) = read_exit(task.exit_file())? {
            return Ok(exit);
        }
        if !executor_running(task) {
            // It may have recorded the exit just before it ended.
            if let Some(exit) = read_exit(task.exit_file())? {
                return Ok(exit);
            }
            // Nothing watches the task any more: take it down, so the
            // runner can start it again cleanly.
            task.kill().await?;
            return Err(DriverError::NotFound);
        }
        backoff.sleep().await;
    }
}

/// Lets the executor record how the stopped task ended, for at most
/// `limit`, so a wait() after stop() answers at once.
pub(crate) async fn await_exit_record(
    task: &impl ExecutorTask,
    limit: Duration,
) -> Result<(), DriverError> {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    while read_exit(task.exit_file())?.is_none()
        && executor_running(task)
        && Instant::now() < deadline
    {
        backoff.sleep().await;
    }
    Ok(())
}

/// Whether the task ended with a record or its executor still watches
/// it; `false` when the executor is gone without recording an exit.
pub(crate) fn watched(task: &impl ExecutorTask) -> std::io::Result<bool> {
    // Read again after the executor check: it may have recorded the exit
    // just before it ended.
    Ok(read_exit(task.exit_file())?.is_some()
        || executor_running(task)
        || read_exit(task.exit_file())?.is_some())
}

/// Kills the task unless it has ended (a destroy's first step).
pub(crate) async fn kill_unless_exited(task: &impl ExecutorTask) -> Result<(), DriverError> {
    if read_exit(task.exit_file())?.is_none() {
        task.kill().await?;
    }
    Ok(())
}

/// Removes the task's state directory (a destroy's last step).
pub(crate) fn remove_state_dir(task: &impl ExecutorTask) -> Result<(), DriverError> {
    match std::fs::remove_dir_all(task.state_dir()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// The handle of the task `task_id` of `driver`, whose state is `state`.
pub(crate) fn into_handle(
    driver: &str,
    task_id: String,
    state: &impl Serialize,
) -> std::io::Result<TaskHandle> {
    Ok(TaskHandle {
        driver: driver.to_string(),
        task_id,
        state: serde_json::to_value(state).map_err(std::io::Error::other)?,
        started_at: chrono::Utc::now(),
    })
}

/// The state of `handle`, which must be one of `driver`'s.
pub(crate) fn state_of<T: DeserializeOwned>(
    handle: &TaskHandle,
    driver: &str,
) -> Result<T, DriverError> {
    let invalid = |text: String| std::io::Error::new(std::io::ErrorKind::InvalidData, text);
    if handle.driver != driver {
        return Err(invalid(format!(
            "a {} handle given to the {driver} driver",
            handle.driver
        ))
        .into());
    }
    serde_json::from_value(handle.state.clone())
        .map_err(|error| invalid(format!("unreadable {driver} handle state: {error}")).into())
}

pub(crate) fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The file's JSON, or `None` while it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unreadable {}: {error}", path.display()),
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// How the task ended, once the executor recorded it in `exit_file`.
pub(crate) fn read_exit(exit_file: &Path) -> std::io::Result<Option<ExitResult>> {
    let Some(record) = read_json::<ExitRecord>(exit_file)? else {
        return Ok(None);
    };
    if !record.task_exited {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not an exit record", exit_file.display()),
        ));
    }
    Ok(Some(ExitResult {
        exit_code: record.exit_code,
        signal: record.signal,
        // Counted by an isolated task's cgroup; false for the others.
        oom_killed: record.oom_killed,
    }))
}

/// Signals the process group `pgrp`, which the caller found running;
/// `false` when it is gone by now.
pub(crate) fn signal_running_group(pgrp: i32, signal: Signal) -> Result<bool, DriverError> {
    match killpg(Pid::from_raw(pgrp), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(errno) => Err(std::io::Error::from(errno).into()),
    }
}

/// Whether `gone` holds within `limit`, polling it.
pub(crate) async fn gone_within(limit: Duration, mut gone: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    loop {
        if gone() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        backoff.sleep().await;
    }
}

/// Polling delays from 5ms doubling up to 100ms.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self(Duration::from_millis(5))
    }

    pub(crate) async fn sleep(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(100));
    }
}
