//! What the drivers that run tasks under an executor ([`crate::executor`])
//! share: the files in the task's state directory, writing the spec and
//! running the executor until it reports the start, reading the exit
//! record, and the waits, checks and kills around them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::executor::{ExecutorSpec, ExitRecord, StartReport};
use crate::raw_exec::STATE_DIR;
use crate::{proc, DriverError, ExitResult, TaskConfig, TaskHandle};

/// The executor's files, in the state directory: the spec of a start
/// without an attempt, the start report, the exit record, the log.
const SPEC_FILE: &str = "executor.json";
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

/// `command` (required) and `args` from the task's `config` block of a
/// `driver` task.
pub(crate) fn command_and_args(
    config: &serde_json::Map<String, serde_json::Value>,
    driver: &str,
) -> Result<(String, Vec<String>), DriverError> {
    let command = match config.get("command") {
        Some(serde_json::Value::String(command)) if !command.trim().is_empty() => command.clone(),
        Some(serde_json::Value::String(_)) | None => {
            return Err(DriverError::InvalidConfig(format!(
                "missing command: the {driver} config needs \"command\""
            )))
        }
        Some(other) => {
            return Err(DriverError::InvalidConfig(format!(
                "{driver} config: \"command\" must be a string, not {other}"
            )))
        }
    };
    let args = match config.get("args") {
        None | Some(serde_json::Value::Null) => Some(Vec::new()),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(_) => None,
    };
    let args = args.ok_or_else(|| {
        DriverError::InvalidConfig(format!(
            "{driver} config: \"args\" must be a list of strings"
        ))
    })?;
    Ok((command, args))
}

/// The claim file's name for `attempt` (none for an empty one, which no
/// one will look for); an attempt must be a plain name.
pub(crate) fn claim_name(attempt: &str) -> Result<Option<String>, DriverError> {
    if attempt.is_empty() {
        return Ok(None);
    }
    let plain = attempt.len() <= 64
        && attempt
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !plain {
        return Err(DriverError::InvalidConfig(format!(
            "invalid start attempt {attempt:?}: letters, digits, '-' and '_' only"
        )));
    }
    Ok(Some(format!("executor.claim.{attempt}")))
}

/// Creates `<task_dir>/.caravan` and clears it of an earlier run's
/// reports: a restarted task reuses its directory, and the last run's
/// reports must not be read as this one's.
pub(crate) fn prepare_state_dir(task_dir: &Path) -> std::io::Result<PathBuf> {
    let state_dir = task_dir.join(STATE_DIR);
    caravan_files::create_private_dir(&state_dir)?;
    for stale in [START_FILE, EXIT_FILE] {
        remove_if_present(&state_dir.join(stale))?;
    }
    Ok(state_dir)
}

/// The executor spec of the start `config` in `state_dir`, running
/// `command` with `args` in the environment `env`.
pub(crate) fn executor_spec(
    config: &TaskConfig,
    (command, args): (String, Vec<String>),
    env: std::collections::BTreeMap<String, String>,
    state_dir: &Path,
    claim_file: Option<String>,
) -> ExecutorSpec {
    ExecutorSpec {
        task_name: config.task_name.clone(),
        command,
        args,
        env,
        cwd: config.task_dir.clone(),
        user: Some(config.user.clone()).filter(|user| !user.is_empty()),
        logs: config.logs.clone(),
        start_file: state_dir.join(START_FILE),
        exit_file: state_dir.join(EXIT_FILE),
        attempt: config.attempt.clone(),
        claim_file: claim_file.map(|name| state_dir.join(name)),
    }
}

/// What an executor reported of the task it started.
pub(crate) struct Started {
    pub executor_pid: i32,
    pub executor_start_time: u64,
    pub task_pid: i32,
    pub task_start_time: u64,
    pub session: i32,
}

/// Writes `spec` for the start `attempt` in `state_dir`, runs
/// `executor_binary` on it and waits for its report that it started the
/// task.
pub(crate) async fn start_executor(
    executor_binary: &Path,
    state_dir: &Path,
    attempt: &str,
    spec: &impl Serialize,
) -> Result<Started, DriverError> {
    // A spec per attempt: an executor of an earlier attempt that has not
    // read its spec yet must never read this one.
    let spec_path = match attempt.is_empty() {
        true => state_dir.join(SPEC_FILE),
        false => state_dir.join(format!("executor.spec.{attempt}.json")),
    };
    let spec_bytes = serde_json::to_vec_pretty(spec).map_err(std::io::Error::other)?;
    caravan_files::write_private_atomic(&spec_path, &spec_bytes)?;

    let executor_log_path = state_dir.join(EXECUTOR_LOG);
    let executor_log = std::fs::File::create(&executor_log_path)?;
    let mut executor = tokio::process::Command::new(executor_binary)
        .arg("executor")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(executor_log.try_clone()?)
        .stderr(executor_log)
        .spawn()
        .map_err(|error| {
            DriverError::Start(format!(
                "failed to run the executor {}: {error}",
                executor_binary.display()
            ))
        })?;
    let executor_pid = executor.id().map_or(0, |pid| pid as i32);
    // Our child, not yet reaped: its /proc entry is there.
    let executor_start_time = proc::stat(executor_pid).map_or(0, |stat| stat.start_time);

    let report = await_start_report(
        &mut executor,
        &state_dir.join(START_FILE),
        attempt,
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
            Ok(Started {
                executor_pid,
                executor_start_time,
                task_pid,
                task_start_time,
                session,
            })
        }
    }
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

/// Waits for the report of the start `attempt` from `executor`, our
/// child. Only a report of that attempt counts: the start file is shared
/// by the starts made in the task directory, and an executor of an
/// earlier one may still write there.
pub(crate) async fn await_start_report(
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
pub(crate) fn report_of(start_file: &Path, attempt: &str) -> std::io::Result<Option<StartReport>> {
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
pub(crate) async fn kill_executor_session(pid: i32, start_time: u64) -> Result<(), DriverError> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// `/bin/sh -c script`, leading a session of its own as an executor
    /// does; stdin piped.
    pub(crate) fn session_leader(script: &str) -> tokio::process::Child {
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

    pub(crate) async fn wait_for_members(session: i32, count: usize) {
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

    fn config(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn command_is_required() {
        for driver in ["raw_exec", "exec"] {
            for block in [json!({}), json!({"command": ""}), json!({"args": ["x"]})] {
                let error = command_and_args(&config(block), driver).unwrap_err();
                assert!(matches!(error, DriverError::InvalidConfig(_)));
                assert!(error.to_string().contains("missing command"), "{error}");
                assert!(error.to_string().contains(driver), "{error}");
            }
            let error = command_and_args(&config(json!({"command": 1})), driver).unwrap_err();
            assert!(error.to_string().contains("must be a string"), "{error}");
        }
    }

    #[test]
    fn args_must_be_strings() {
        for block in [
            json!({"command": "x", "args": [1]}),
            json!({"command": "x", "args": "a b"}),
        ] {
            let error = command_and_args(&config(block), "exec").unwrap_err();
            assert!(error.to_string().contains("list of strings"), "{error}");
        }
    }

    #[test]
    fn command_and_args_are_read() {
        let (command, args) = command_and_args(
            &config(json!({"command": "/bin/echo", "args": ["a", "b c"]})),
            "raw_exec",
        )
        .unwrap();
        assert_eq!(command, "/bin/echo");
        assert_eq!(args, ["a", "b c"]);
        let (command, args) =
            command_and_args(&config(json!({"command": "x", "args": null})), "exec").unwrap();
        assert_eq!((command.as_str(), args), ("x", Vec::<String>::new()));
    }
}
