//! exec: raw_exec's contract with isolation. Each task runs under an
//! executor ([`crate::executor`], which outlives the client) as PID 1 of
//! its own PID namespace, with its own mount, IPC and UTS namespaces, a
//! root made of its task directory plus read-only bind mounts of the
//! host's system directories ([`isolate`]), and a cgroup of its own
//! ([`cgroup`]) that limits its memory and CPU, counts OOM kills, and
//! finds every process of the task to kill it. Needs root and the memory
//! and cpu cgroup controllers (v1 or v2).
//!
//! Inside, the task sees its directory as `/`, with `/local`, `/secrets`,
//! `/tmp` and the shared `/alloc`; environment values that are paths into
//! those (`NOMAD_TASK_DIR`, ...) are rewritten to the paths the task sees.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::executor::ExitRecord;
use crate::raw_exec::RawExecState;
use crate::signal::parse_signal;
use crate::{
    proc, Driver, DriverError, ExitResult, Fingerprint, RawExec, StartAttempt, TaskHandle,
};

pub mod cgroup;
pub mod isolate;
mod start;

pub use cgroup::cgroup_version;
use cgroup::{cgroup_name, Hierarchy, TaskCgroup};

/// The driver's name in jobspecs and node attributes.
pub const NAME: &str = "exec";

/// How long processes may take to vanish after SIGKILL.
const KILL_LIMIT: Duration = Duration::from_secs(10);
/// How long the executor may take to record the exit once the task is
/// gone (it drains the logs and removes the cgroup first).
const RECORD_LIMIT: Duration = Duration::from_secs(15);

/// The exec driver.
#[derive(Debug, Clone)]
pub struct Exec {
    executor_binary: PathBuf,
}

/// [`TaskHandle::state`] of an exec task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecState {
    pub executor_pid: i32,
    /// `/proc/<pid>/stat` field 22 of the executor.
    pub executor_start_time: u64,
    /// The task's PID 1, as the host numbers it; it leads the task's
    /// process group.
    pub task_pid: i32,
    pub task_start_time: u64,
    /// The executor's session, which the task's group is in.
    pub session: i32,
    /// `<task_dir>/.caravan`, as raw_exec's.
    pub state_dir: PathBuf,
    pub exit_file: PathBuf,
    pub cgroup: TaskCgroup,
}

impl ExecState {
    fn into_handle(self, task_id: String) -> Result<TaskHandle, DriverError> {
        Ok(TaskHandle {
            driver: NAME.to_string(),
            task_id,
            state: serde_json::to_value(&self).map_err(std::io::Error::other)?,
            started_at: chrono::Utc::now(),
        })
    }
}

impl Exec {
    /// `executor_binary` is run as `<executor_binary> executor <spec>`
    /// (the `caravan` binary itself).
    pub fn new(executor_binary: PathBuf) -> Self {
        Self { executor_binary }
    }

    /// Why this node cannot run exec tasks, if it cannot.
    fn unusable() -> Option<String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Some("Driver must run as root".into());
        }
        Hierarchy::detect()
            .err()
            .map(|why| format!("no usable cgroup controller: {why}"))
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let state = state_of(handle)?;
        let mut backoff = Backoff::new();
        loop {
            if let Some(exit) = read_exit(&state)? {
                return Ok(exit);
            }
            if !executor_running(&state) {
                if let Some(exit) = read_exit(&state)? {
                    return Ok(exit);
                }
                // Nothing watches the task any more: take it down, so the
                // runner can start it again cleanly.
                kill_task(&state).await?;
                return Err(DriverError::NotFound);
            }
            backoff.sleep().await;
        }
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let signal = parse_signal(signal)?;
        let state = state_of(handle)?;
        // A PID 1 ignores signals it has no handler for (SIGKILL aside),
        // as in any container: then the rest of the group still gets it,
        // and SIGKILL follows the timeout.
        if signal_group(&state, signal)? {
            gone_within(&state, timeout).await;
        }
        // Whatever is left, and what left the group meanwhile.
        kill_task(&state).await?;
        let deadline = Instant::now() + RECORD_LIMIT;
        let mut backoff = Backoff::new();
        while read_exit(&state)?.is_none() && executor_running(&state) && Instant::now() < deadline
        {
            backoff.sleep().await;
        }
        Ok(())
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = state_of(handle)?;
        // Read again after the executor check: it may have recorded the
        // exit just before it ended.
        if read_exit(&state)?.is_some() || executor_running(&state) || read_exit(&state)?.is_some()
        {
            return Ok(());
        }
        // The executor is gone without recording an exit: what is left of
        // the task runs unwatched, its output going nowhere.
        kill_task(&state).await?;
        remove_cgroup(&state.cgroup).await?;
        Err(DriverError::NotFound)
    }

    async fn destroy_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = state_of(handle)?;
        if read_exit(&state)?.is_none() {
            kill_task(&state).await?;
        }
        remove_cgroup(&state.cgroup).await?;
        match std::fs::remove_dir_all(&state.state_dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// Settles a lost start through raw_exec's claim files, which exec's
    /// executor writes alike; the cgroup follows from the task's ID.
    async fn find_task(&self, attempt: &StartAttempt) -> Result<Option<TaskHandle>, DriverError> {
        let raw = RawExec::new(self.executor_binary.clone(), true);
        let Some(found) = raw.find(attempt).await? else {
            return Ok(None);
        };
        let raw_state: RawExecState = serde_json::from_value(found.state).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
        })?;
        let hierarchy = Hierarchy::detect().map_err(std::io::Error::other)?;
        let state = ExecState {
            executor_pid: raw_state.executor_pid,
            executor_start_time: raw_state.executor_start_time,
            task_pid: raw_state.task_pid,
            task_start_time: raw_state.task_start_time,
            session: raw_state.session,
            state_dir: raw_state.state_dir,
            exit_file: raw_state.exit_file,
            cgroup: hierarchy.cgroup(&cgroup_name(&attempt.task_id)),
        };
        Ok(Some(state.into_handle(attempt.task_id.clone())?))
    }
}

impl Driver for Exec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        let fingerprint = match Self::unusable() {
            Some(why) if !nix::unistd::Uid::effective().is_root() => Fingerprint {
                description: why,
                ..Fingerprint::default()
            },
            // Nomad's exec without cgroups: detected, but unhealthy.
            Some(why) => Fingerprint {
                detected: true,
                description: why,
                ..Fingerprint::default()
            },
            None => Fingerprint {
                detected: true,
                healthy: true,
                description: "Healthy".to_string(),
                attributes: BTreeMap::from([("driver.exec".to_string(), "true".to_string())]),
            },
        };
        Box::pin(std::future::ready(fingerprint))
    }

    fn start(&self, config: crate::TaskConfig) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
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
            let state = state_of(handle)?;
            match signal_group(&state, signal)? {
                true => Ok(()),
                false => Err(DriverError::NotFound),
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

    fn usage<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<crate::TaskUsage, DriverError>> {
        Box::pin(async move {
            let state = state_of(handle)?;
            if !task_running(&state) {
                return Err(DriverError::NotFound);
            }
            // The task's processes stay in the executor's session (the
            // group walk also takes descendants that left the group).
            Ok(crate::usage::group_usage(state.task_pid, state.session))
        })
    }
}

fn state_of(handle: &TaskHandle) -> Result<ExecState, DriverError> {
    let invalid = |text: String| std::io::Error::new(std::io::ErrorKind::InvalidData, text);
    if handle.driver != NAME {
        return Err(invalid(format!(
            "a {} handle given to the exec driver",
            handle.driver
        ))
        .into());
    }
    serde_json::from_value(handle.state.clone())
        .map_err(|error| invalid(format!("unreadable exec handle state: {error}")).into())
}

fn read_exit(state: &ExecState) -> Result<Option<ExitResult>, DriverError> {
    let bytes = match std::fs::read(&state.exit_file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let invalid = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not an exit record", state.exit_file.display()),
        )
    };
    let record: ExitRecord = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if !record.task_exited {
        return Err(invalid().into());
    }
    Ok(Some(ExitResult {
        exit_code: record.exit_code,
        signal: record.signal,
        oom_killed: record.oom_killed,
    }))
}

fn executor_running(state: &ExecState) -> bool {
    proc::is_running(state.executor_pid, state.executor_start_time)
}

/// Whether anything of the task runs: its group, or its cgroup (which
/// also holds processes that left the group).
fn task_running(state: &ExecState) -> bool {
    !proc::running_group_members(state.task_pid, state.session).is_empty()
        || !state.cgroup.pids().is_empty()
}

/// Signals the task's group; `false` when nothing of the task runs.
fn signal_group(state: &ExecState, signal: Signal) -> Result<bool, DriverError> {
    // The check keeps the signal from an unrelated group that took the
    // number after ours was gone.
    if proc::running_group_members(state.task_pid, state.session).is_empty() {
        // What left the group is still the task's: its cgroup says so.
        let pids = state.cgroup.pids();
        for pid in &pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), signal);
        }
        return Ok(!pids.is_empty());
    }
    match killpg(Pid::from_raw(state.task_pid), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(errno) => Err(std::io::Error::from(errno).into()),
    }
}

async fn gone_within(state: &ExecState, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    loop {
        if !task_running(state) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        backoff.sleep().await;
    }
}

/// SIGKILLs every process of the task, its cgroup's and its group's, and
/// waits for them to be gone.
async fn kill_task(state: &ExecState) -> Result<(), DriverError> {
    let deadline = Instant::now() + KILL_LIMIT;
    let mut backoff = Backoff::new();
    loop {
        let in_group = signal_group(state, Signal::SIGKILL)?;
        let in_cgroup = state.cgroup.kill_all();
        if !in_group && in_cgroup == 0 && !task_running(state) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "processes of exec task {} still run {KILL_LIMIT:?} after SIGKILL",
                state.task_pid
            ))
            .into());
        }
        backoff.sleep().await;
    }
}

/// Removes the task's cgroup (the executor normally has already).
async fn remove_cgroup(cgroup: &TaskCgroup) -> Result<(), DriverError> {
    let deadline = Instant::now() + KILL_LIMIT;
    let mut backoff = Backoff::new();
    loop {
        match cgroup.remove() {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => return Err(error.into()),
            Err(_) => {
                cgroup.kill_all();
                backoff.sleep().await;
            }
        }
    }
}

/// Polling delays from 5ms doubling up to 100ms.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(5))
    }

    async fn sleep(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(100));
    }
}
