//! exec: raw_exec's contract with isolation. Each task runs under an
//! executor ([`crate::executor`], which outlives the client) as PID 1 of
//! its own PID namespace, with its own mount, IPC and UTS namespaces, a
//! root made of its task directory plus read-only bind mounts of the
//! host's system directories ([`isolate`]), and a cgroup of its own
//! ([`cgroup`]) that limits its memory and CPU, counts OOM kills, and
//! finds every process of the task to kill it. Needs root and the memory
//! and cpu cgroup controllers (v1 or v2). As Nomad's, it never runs a task
//! as root: `nobody` when the task names no `user`, and `root` refused
//! ([`user`]).
//!
//! Inside, the task sees its directory as `/`, with `/local`, `/secrets`,
//! `/tmp` and the shared `/alloc`; environment values that are paths into
//! those (`NOMAD_TASK_DIR`, ...) are rewritten to the paths the task sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::executor_client::{self as client, state_of, Backoff, ExecutorTask, KILL_LIMIT};
use crate::raw_exec::RawExecState;
use crate::signal::parse_signal;
use crate::{
    proc, Driver, DriverError, ExitResult, Fingerprint, RawExec, StartAttempt, TaskHandle,
};

pub mod cgroup;
pub mod isolate;
mod mount_attr;
mod start;
mod user;

pub use cgroup::cgroup_version;
use cgroup::{cgroup_name, Hierarchy, TaskCgroup};

/// The driver's name in jobspecs and node attributes.
pub const NAME: &str = "exec";

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
    /// The state of a task that raw_exec's state describes, in `cgroup`.
    fn new(raw: RawExecState, cgroup: TaskCgroup) -> Self {
        Self {
            executor_pid: raw.executor_pid,
            executor_start_time: raw.executor_start_time,
            task_pid: raw.task_pid,
            task_start_time: raw.task_start_time,
            session: raw.session,
            state_dir: raw.state_dir,
            exit_file: raw.exit_file,
            cgroup,
        }
    }

    fn into_handle(self, task_id: String) -> Result<TaskHandle, DriverError> {
        Ok(client::into_handle(NAME, task_id, &self)?)
    }
}

impl ExecutorTask for ExecState {
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
        kill_task(self).await
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
        let state: ExecState = state_of(handle, NAME)?;
        client::wait_exit(&state).await
    }

    async fn stop_task(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let signal = parse_signal(signal)?;
        let state: ExecState = state_of(handle, NAME)?;
        // A PID 1 ignores signals it has no handler for (SIGKILL aside),
        // as in any container: then the rest of the group still gets it,
        // and SIGKILL follows the timeout.
        if signal_group(&state, signal)? {
            client::gone_within(timeout, || !task_running(&state)).await;
        }
        // Whatever is left, and what left the group meanwhile.
        kill_task(&state).await?;
        client::await_exit_record(&state, RECORD_LIMIT).await
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state: ExecState = state_of(handle, NAME)?;
        if client::watched(&state)? {
            return Ok(());
        }
        // The executor is gone without recording an exit: what is left of
        // the task runs unwatched, its output going nowhere.
        kill_task(&state).await?;
        remove_cgroup(&state.cgroup).await?;
        Err(DriverError::NotFound)
    }

    async fn destroy_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state: ExecState = state_of(handle, NAME)?;
        client::kill_unless_exited(&state).await?;
        remove_cgroup(&state.cgroup).await?;
        client::remove_state_dir(&state)
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
        let cgroup = hierarchy.cgroup(&cgroup_name(&attempt.task_id));
        let state = ExecState::new(raw_state, cgroup);
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
            let state: ExecState = state_of(handle, NAME)?;
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

    /// In the task's namespaces and cgroup, as its PID 1's user.
    fn exec<'a>(
        &'a self,
        handle: &'a TaskHandle,
        request: crate::ExecRequest,
    ) -> BoxFuture<'a, Result<crate::ExecSession, DriverError>> {
        Box::pin(async move {
            let state: ExecState = state_of(handle, NAME)?;
            let procs: Vec<std::path::PathBuf> = state
                .cgroup
                .dirs
                .iter()
                .map(|dir| dir.join("cgroup.procs"))
                .collect();
            crate::session::exec_in_process(
                state.task_pid,
                state.task_start_time,
                &request,
                crate::session::Join::Isolated {
                    cgroup_procs: &procs,
                },
            )
        })
    }

    fn usage<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<crate::TaskUsage, DriverError>> {
        Box::pin(async move {
            let state: ExecState = state_of(handle, NAME)?;
            if !task_running(&state) {
                return Err(DriverError::NotFound);
            }
            // The task's processes stay in the executor's session (the
            // group walk also takes descendants that left the group).
            Ok(crate::usage::group_usage(state.task_pid, state.session))
        })
    }
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
    client::signal_running_group(state.task_pid, signal)
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
