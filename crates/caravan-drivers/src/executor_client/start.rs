//! Starting a task under an executor: the task's command, its state
//! directory, the executor's spec, running the executor until it reports
//! the start, and taking its session down when it does not.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use super::{
    read_json, remove_if_present, Backoff, EXECUTOR_LOG, EXIT_FILE, KILL_LIMIT, SPEC_FILE,
    START_FILE, START_LIMIT,
};
use crate::executor::{ExecutorSpec, StartReport};
use crate::raw_exec::{RawExecState, STATE_DIR};
use crate::{proc, DriverError, TaskConfig};

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

/// Writes `spec` for the start `attempt` in `state_dir`, runs
/// `executor_binary` on it and waits for its report that it started the
/// task: the task's state as raw_exec keeps it.
pub(crate) async fn start_executor(
    executor_binary: &Path,
    state_dir: &Path,
    attempt: &str,
    spec: &impl Serialize,
) -> Result<RawExecState, DriverError> {
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
            Ok(RawExecState {
                executor_pid,
                executor_start_time,
                task_pid,
                task_start_time,
                session,
                state_dir: state_dir.to_path_buf(),
                exit_file: state_dir.join(EXIT_FILE),
            })
        }
    }
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
