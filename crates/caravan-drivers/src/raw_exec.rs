//! raw_exec: runs a command as the client's user (or `user`, when the
//! client is root), without isolation, under an executor process
//! ([`crate::executor`]) that outlives the client. The handle records the
//! executor's and the task's pids with their start times, so a later
//! client can tell them from processes that reused the numbers.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::executor::{ExecutorSpec, ExitRecord, StartReport};
use crate::signal::parse_signal;
use crate::{
    proc, Driver, DriverError, ExitResult, Fingerprint, StartAttempt, TaskConfig, TaskHandle,
};

/// The driver's name in jobspecs and node attributes.
pub const NAME: &str = "raw_exec";

/// The driver's files, under the task directory.
pub const STATE_DIR: &str = ".caravan";
const SPEC_FILE: &str = "executor.json";
const START_FILE: &str = "executor.started.json";
const EXIT_FILE: &str = "executor.exit.json";
const EXECUTOR_LOG: &str = "executor.log";

/// How long an executor may take to report that the task started.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long processes may take to vanish after SIGKILL.
const KILL_LIMIT: Duration = Duration::from_secs(10);
/// How long the executor may take to record the exit once the task's
/// group is gone (it drains the logs first).
const RECORD_LIMIT: Duration = Duration::from_secs(10);

mod claim;

use claim::claim_name;

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
        Ok(TaskHandle {
            driver: NAME.to_string(),
            task_id,
            state: serde_json::to_value(&self).map_err(std::io::Error::other)?,
            started_at: chrono::Utc::now(),
        })
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
        let (command, args) = command_and_args(&config.config)?;
        link_mounts(&config.task_dir, &config.mounts)?;
        let claim_file = claim_name(&config.attempt)?;
        let state_dir = config.task_dir.join(STATE_DIR);
        caravan_files::create_private_dir(&state_dir)?;
        let (start_file, exit_file) = (state_dir.join(START_FILE), state_dir.join(EXIT_FILE));
        // A restarted task reuses its directory: the last run's reports
        // must not be read as this one's.
        for stale in [&start_file, &exit_file] {
            remove_if_present(stale)?;
        }
        let spec = ExecutorSpec {
            task_name: config.task_name.clone(),
            command,
            args,
            env: config.env.clone(),
            cwd: config.task_dir.clone(),
            user: Some(config.user.clone()).filter(|user| !user.is_empty()),
            logs: config.logs.clone(),
            start_file: start_file.clone(),
            exit_file: exit_file.clone(),
            attempt: config.attempt.clone(),
            claim_file: claim_file.map(|name| state_dir.join(name)),
        };
        // A spec per attempt: an executor of an earlier attempt that has
        // not read its spec yet must never read this one.
        let spec_path = match config.attempt.is_empty() {
            true => state_dir.join(SPEC_FILE),
            false => state_dir.join(format!("executor.spec.{}.json", config.attempt)),
        };
        let spec_bytes = serde_json::to_vec_pretty(&spec).map_err(std::io::Error::other)?;
        caravan_files::write_private_atomic(&spec_path, &spec_bytes)?;

        let executor_log_path = state_dir.join(EXECUTOR_LOG);
        let executor_log = std::fs::File::create(&executor_log_path)?;
        let mut executor = tokio::process::Command::new(&self.executor_binary)
            .arg("executor")
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(executor_log.try_clone()?)
            .stderr(executor_log)
            .spawn()
            .map_err(|error| {
                DriverError::Start(format!(
                    "failed to run the executor {}: {error}",
                    self.executor_binary.display()
                ))
            })?;
        let executor_pid = executor.id().map_or(0, |pid| pid as i32);
        // Our child, not yet reaped: its /proc entry is there.
        let executor_start_time = proc::stat(executor_pid).map_or(0, |stat| stat.start_time);

        let report = await_start_report(
            &mut executor,
            &start_file,
            &config.attempt,
            &executor_log_path,
            START_LIMIT,
        )
        .await?;
        match report {
            StartReport::Failed { error, .. } => {
                let _ = executor.wait().await;
                Err(DriverError::Start(error))
            }
            StartReport::Started {
                task_pid,
                task_start_time,
                session,
                ..
            } => {
                // Reap the executor when it ends, so it leaves no zombie;
                // after a client restart it is no longer ours to reap.
                tokio::spawn(async move {
                    let _ = executor.wait().await;
                });
                let state = RawExecState {
                    executor_pid,
                    executor_start_time,
                    task_pid,
                    task_start_time,
                    session,
                    state_dir,
                    exit_file,
                };
                Ok(state.into_handle(config.id)?)
            }
        }
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let state = state_of(handle)?;
        let mut backoff = Backoff::new();
        loop {
            if let Some(record) = read_exit(&state)? {
                return Ok(record);
            }
            if !executor_running(&state) {
                // It may have recorded the exit just before it ended.
                if let Some(record) = read_exit(&state)? {
                    return Ok(record);
                }
                // Nothing watches the task any more: take it down, so the
                // runner can start it again cleanly.
                kill_group(&state).await?;
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
        if signal_group(&state, signal)? && !group_gone_within(&state, timeout).await {
            kill_group(&state).await?;
        }
        // Let the executor record how the task ended, so a wait() after
        // stop() answers at once.
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
        if read_exit(&state)?.is_some() || executor_running(&state) {
            return Ok(());
        }
        if read_exit(&state)?.is_some() {
            return Ok(());
        }
        // The executor is gone without recording an exit (killed with the
        // client, or the node rebooted): whatever is left of the task runs
        // unwatched and its output goes nowhere.
        kill_group(&state).await?;
        Err(DriverError::NotFound)
    }

    async fn destroy_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = state_of(handle)?;
        if read_exit(&state)?.is_none() {
            kill_group(&state).await?;
        }
        match std::fs::remove_dir_all(&state.state_dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
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
            let state = state_of(handle)?;
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

    fn usage<'a>(
        &'a self,
        handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<crate::TaskUsage, DriverError>> {
        Box::pin(async move {
            let state = state_of(handle)?;
            // The group check keeps an unrelated group that took the
            // number after ours was gone from being measured.
            if !group_running(&state) {
                return Err(DriverError::NotFound);
            }
            Ok(crate::usage::group_usage(state.task_pid, state.session))
        })
    }
}

/// `command` (required) and `args` from the task's `config` block.
fn command_and_args(
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<(String, Vec<String>), DriverError> {
    let command = match config.get("command") {
        Some(serde_json::Value::String(command)) if !command.trim().is_empty() => command.clone(),
        Some(serde_json::Value::String(_)) | None => {
            return Err(DriverError::InvalidConfig(
                "missing command: the raw_exec config needs \"command\"".into(),
            ))
        }
        Some(other) => {
            return Err(DriverError::InvalidConfig(format!(
                "raw_exec config: \"command\" must be a string, not {other}"
            )))
        }
    };
    let args = match config.get("args") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                DriverError::InvalidConfig(
                    "raw_exec config: \"args\" must be a list of strings".into(),
                )
            })?,
        Some(_) => {
            return Err(DriverError::InvalidConfig(
                "raw_exec config: \"args\" must be a list of strings".into(),
            ))
        }
    };
    Ok((command, args))
}

fn state_of(handle: &TaskHandle) -> Result<RawExecState, DriverError> {
    if handle.driver != NAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a {} handle given to the raw_exec driver", handle.driver),
        )
        .into());
    }
    serde_json::from_value(handle.state.clone()).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable raw_exec handle state: {error}"),
        )
        .into()
    })
}

/// raw_exec has no filesystem isolation, so it cannot mount a host volume
/// at an absolute destination: it links `<task_dir>/<destination>` (the
/// leading `/` dropped) to the host path instead, so the task reaches the
/// volume relative to its working directory. `read_only` cannot be
/// enforced without a mount: the task writes whatever its user may.
fn link_mounts(task_dir: &Path, mounts: &[crate::MountConfig]) -> Result<(), DriverError> {
    for mount in mounts {
        let relative = Path::new(mount.task_path.trim_start_matches('/'));
        let escapes = relative
            .components()
            .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
        if escapes || relative.as_os_str().is_empty() {
            return Err(DriverError::InvalidConfig(format!(
                "volume_mount destination {:?} must name a path inside the task directory",
                mount.task_path
            )));
        }
        let link = task_dir.join(relative);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A restarted task reuses its directory and its earlier link; only
        // a link is replaced, never a file or directory of the task's.
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(&link)?,
            Ok(_) => {
                return Err(DriverError::InvalidConfig(format!(
                    "volume_mount destination {:?} already exists in the task directory",
                    mount.task_path
                )))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        std::os::unix::fs::symlink(&mount.host_path, &link)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The file's JSON, or `None` while it does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
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

fn read_exit(state: &RawExecState) -> std::io::Result<Option<ExitResult>> {
    let Some(record) = read_json::<ExitRecord>(&state.exit_file)? else {
        return Ok(None);
    };
    if !record.task_exited {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not an exit record", state.exit_file.display()),
        ));
    }
    Ok(Some(ExitResult {
        exit_code: record.exit_code,
        signal: record.signal,
        oom_killed: false,
    }))
}

/// Waits for the report of the start `attempt` from `executor`, our
/// child. Only a report of that attempt counts: the start file is shared
/// by the starts made in the task directory, and an executor of an
/// earlier one may still write there.
async fn await_start_report(
    executor: &mut tokio::process::Child,
    start_file: &Path,
    attempt: &str,
    executor_log: &Path,
    limit: Duration,
) -> Result<StartReport, DriverError> {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    let executor_pid = executor.id().map_or(0, |pid| pid as i32);
    // Our child, not yet reaped: its /proc entry is there.
    let executor_start_time = proc::stat(executor_pid).map_or(0, |stat| stat.start_time);
    loop {
        if let Some(report) = report_of(start_file, attempt)? {
            return Ok(report);
        }
        if let Some(status) = executor.try_wait()? {
            if let Some(report) = report_of(start_file, attempt)? {
                return Ok(report);
            }
            // It may have launched the task before it died: that task
            // must not run on unwatched beside the next start.
            kill_executor_session(executor_pid, executor_start_time).await?;
            let said = std::fs::read_to_string(executor_log).unwrap_or_default();
            return Err(DriverError::Start(format!(
                "the executor exited ({status}) before starting the task: {}",
                said.trim()
            )));
        }
        if Instant::now() >= deadline {
            // The executor and its task, launched but maybe not reported
            // yet, share the session the executor leads: all of it goes,
            // or the task would run unwatched beside the runner's next
            // start. Killed before it is reaped, so the pid stays ours.
            let _ = executor.start_kill();
            let killed = kill_executor_session(executor_pid, executor_start_time).await;
            let _ = executor.wait().await;
            killed?;
            return Err(DriverError::Start(format!(
                "the executor did not start the task within {limit:?}"
            )));
        }
        backoff.sleep().await;
    }
}

/// The start report in `start_file` if it is the one of `attempt`.
fn report_of(start_file: &Path, attempt: &str) -> std::io::Result<Option<StartReport>> {
    Ok(
        read_json::<StartReport>(start_file)?.filter(|report| match report {
            StartReport::Started { attempt: of, .. } | StartReport::Failed { attempt: of, .. } => {
                of == attempt
            }
        }),
    )
}

/// SIGKILLs what is left of the session the executor `pid` (started at
/// `start_time`) led, itself included, and waits for it to be gone.
/// Nothing is touched when `pid` now names another process: that one then
/// holds the number, so no process of the executor's session is left
/// (Linux keeps a pid reserved while any process has it as its session).
async fn kill_executor_session(pid: i32, start_time: u64) -> Result<(), DriverError> {
    // 0 is the kernel's threads' session, 1 init's.
    if pid <= 1 {
        return Ok(());
    }
    if proc::stat(pid).is_some_and(|stat| stat.start_time != start_time) {
        return Ok(());
    }
    let deadline = Instant::now() + KILL_LIMIT;
    let mut backoff = Backoff::new();
    loop {
        // Again and again: a member may fork while the others are killed.
        let members = proc::running_session_members(pid);
        if members.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "processes {members:?} of executor session {pid} still run {KILL_LIMIT:?} after SIGKILL"
            ))
            .into());
        }
        for member in members {
            let _ = nix::sys::signal::kill(Pid::from_raw(member), Signal::SIGKILL);
        }
        backoff.sleep().await;
    }
}

fn executor_running(state: &RawExecState) -> bool {
    proc::is_running(state.executor_pid, state.executor_start_time)
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
    match killpg(Pid::from_raw(state.task_pid), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(errno) => Err(std::io::Error::from(errno).into()),
    }
}

async fn group_gone_within(state: &RawExecState, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    loop {
        if !group_running(state) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        backoff.sleep().await;
    }
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// `/bin/sh -c script`, leading a session of its own as an executor
    /// does; stdin piped.
    pub(super) fn session_leader(script: &str) -> tokio::process::Child {
        let mut command = tokio::process::Command::new("/bin/sh");
        command.arg("-c").arg(script).stdin(Stdio::piped());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                Ok(())
            });
        }
        command.spawn().unwrap()
    }

    pub(super) async fn wait_for_members(session: i32, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc::running_session_members(session).len() < count {
            assert!(Instant::now() < deadline, "session {session} never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn started(attempt: &str) -> StartReport {
        StartReport::Started {
            executor_pid: 1,
            task_pid: 2,
            task_start_time: 3,
            session: 1,
            executor_start_time: 4,
            attempt: attempt.into(),
        }
    }

    /// A report an earlier start's executor left (or wrote late) in the
    /// shared start file is not this start's.
    #[tokio::test]
    async fn only_the_report_of_the_attempt_counts() {
        let dir = tempfile::tempdir().unwrap();
        let start_file = dir.path().join(START_FILE);
        std::fs::write(&start_file, serde_json::to_vec(&started("old")).unwrap()).unwrap();
        let mut executor = session_leader("exec sleep 1000");
        let writer = {
            let start_file = start_file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                std::fs::write(&start_file, serde_json::to_vec(&started("new")).unwrap()).unwrap();
            })
        };
        let log = dir.path().join(EXECUTOR_LOG);
        let report = await_start_report(
            &mut executor,
            &start_file,
            "new",
            &log,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(report, started("new"));
        writer.await.unwrap();
        executor.kill().await.unwrap();
    }

    /// An executor that does not report in time goes with its whole
    /// session: a task it launched but did not report yet must not run on
    /// beside the runner's next start.
    #[tokio::test]
    async fn an_executor_too_slow_to_report_goes_with_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut executor = session_leader("sleep 1000 & exec sleep 1000");
        let pid = executor.id().unwrap() as i32;
        wait_for_members(pid, 2).await;
        let error = await_start_report(
            &mut executor,
            &dir.path().join(START_FILE),
            "a",
            &dir.path().join(EXECUTOR_LOG),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, DriverError::Start(_)), "{error}");
        assert_eq!(proc::running_session_members(pid), Vec::<i32>::new());
    }

    #[test]
    fn mounts_are_links_in_the_task_directory() {
        let (task_dir, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mount = |task_path: &str| crate::MountConfig {
            host_path: host.path().to_path_buf(),
            task_path: task_path.into(),
            read_only: false,
        };
        let mounts = [mount("/data"), mount("./deep/er/data")];
        // Twice: a restart finds its links and makes them again.
        link_mounts(task_dir.path(), &mounts).unwrap();
        link_mounts(task_dir.path(), &mounts).unwrap();
        std::fs::write(task_dir.path().join("data/file"), "x").unwrap();
        assert_eq!(std::fs::read(host.path().join("file")).unwrap(), b"x");
        let deep = task_dir.path().join("deep/er/data");
        assert_eq!(std::fs::read_link(deep).unwrap(), host.path());

        for bad in ["/../etc", "a/../../b", "/", ""] {
            let error = link_mounts(task_dir.path(), &[mount(bad)]).unwrap_err();
            assert!(
                matches!(error, DriverError::InvalidConfig(_)),
                "{bad}: {error}"
            );
        }
        std::fs::create_dir(task_dir.path().join("local")).unwrap();
        let error = link_mounts(task_dir.path(), &[mount("/local")]).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
    }

    fn config(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn command_is_required() {
        for block in [json!({}), json!({"command": ""}), json!({"args": ["x"]})] {
            let error = command_and_args(&config(block)).unwrap_err();
            assert!(matches!(error, DriverError::InvalidConfig(_)));
            assert!(error.to_string().contains("missing command"), "{error}");
        }
    }

    #[test]
    fn args_must_be_strings() {
        let error = command_and_args(&config(json!({"command": "x", "args": [1]}))).unwrap_err();
        assert!(error.to_string().contains("list of strings"), "{error}");
        let error = command_and_args(&config(json!({"command": "x", "args": "a b"}))).unwrap_err();
        assert!(error.to_string().contains("list of strings"), "{error}");
    }

    #[test]
    fn command_and_args_are_read() {
        let (command, args) = command_and_args(&config(
            json!({"command": "/bin/echo", "args": ["a", "b c"]}),
        ))
        .unwrap();
        assert_eq!(command, "/bin/echo");
        assert_eq!(args, ["a", "b c"]);
    }
}
