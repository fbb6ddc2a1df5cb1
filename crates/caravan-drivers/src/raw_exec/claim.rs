//! Settling a start whose handle the client lost, through the start's
//! claim file (see [`crate::executor`]).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{RawExec, RawExecState, STATE_DIR};
use crate::executor::{ClaimRecord, StartReport};
use crate::executor_client::{
    claim_name, kill_executor_session, read_json, report_of, Backoff, EXIT_FILE, START_FILE,
    START_LIMIT,
};
use crate::{proc, DriverError, StartAttempt, TaskHandle};

impl RawExec {
    /// Settles a start whose handle was lost through its claim file (see
    /// [`crate::executor`]): created here, the start's executor (if it
    /// ever runs) gives up; already created by the executor, its start
    /// report names the task, or, when none comes, the executor's session
    /// is taken down and the start settled as never made.
    pub(super) async fn find_task(
        &self,
        attempt: &StartAttempt,
    ) -> Result<Option<TaskHandle>, DriverError> {
        find_start(attempt, START_LIMIT).await
    }
}

/// [`RawExec::find_task`], waiting at most `limit` for a report.
async fn find_start(
    attempt: &StartAttempt,
    limit: Duration,
) -> Result<Option<TaskHandle>, DriverError> {
    let claim_file = claim_name(&attempt.attempt)?.ok_or_else(|| {
        DriverError::InvalidConfig("a start without an attempt cannot be found".into())
    })?;
    let state_dir = attempt.task_dir.join(STATE_DIR);
    let claim_path = state_dir.join(claim_file);
    let claimed = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&claim_path);
    match claimed {
        // Settled: that start never launches the task.
        Ok(_) => return Ok(None),
        // The start never got as far as its state directory.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error.into()),
    }
    let start_file = state_dir.join(START_FILE);
    // Empty, it is the claim of an earlier find (made before the
    // client was killed again): settled then.
    let Some(executor) = read_claim(&claim_path)? else {
        return Ok(None);
    };
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new();
    loop {
        match read_json::<StartReport>(&start_file)? {
            Some(StartReport::Started {
                executor_pid,
                task_pid,
                task_start_time,
                session,
                executor_start_time,
                attempt: reported,
            }) if reported == attempt.attempt => {
                let state = RawExecState {
                    executor_pid,
                    executor_start_time,
                    task_pid,
                    task_start_time,
                    session,
                    exit_file: state_dir.join(EXIT_FILE),
                    state_dir,
                };
                return Ok(Some(state.into_handle(attempt.task_id.clone())?));
            }
            Some(StartReport::Failed {
                attempt: reported, ..
            }) if reported == attempt.attempt => return Ok(None),
            _ => {}
        }
        // Gone without a report (the node rebooted, it was killed),
        // or hung: whatever it launched goes with its session, and
        // the start is settled as never made. Starting the task anew
        // beside it would run it twice.
        let gone = !proc::is_running(executor.executor_pid, executor.executor_start_time);
        if gone || Instant::now() >= deadline {
            if gone && report_of(&start_file, &attempt.attempt)?.is_some() {
                // It reported just before it ended: read it above.
                continue;
            }
            kill_executor_session(executor.executor_pid, executor.executor_start_time).await?;
            tracing::warn!(
                attempt = %attempt.attempt,
                executor_pid = executor.executor_pid,
                "the executor claimed the start but did not report it; took its session down"
            );
            return Ok(None);
        }
        backoff.sleep().await;
    }
}

/// The executor that created the claim file, or `None` when a client did
/// (and left it empty).
fn read_claim(path: &Path) -> Result<Option<ClaimRecord>, DriverError> {
    let bytes = std::fs::read(path)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable claim {}: {error}", path.display()),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::super::NAME;
    use super::*;
    use crate::executor_client::tests::{session_leader, wait_for_members};

    fn attempt(task_dir: &Path) -> StartAttempt {
        StartAttempt {
            driver: NAME.into(),
            task_id: "a/t".into(),
            attempt: "lost".into(),
            task_dir: task_dir.to_path_buf(),
        }
    }

    fn claim_by(task_dir: &Path, executor_pid: i32) {
        let state_dir = task_dir.join(STATE_DIR);
        std::fs::create_dir_all(&state_dir).unwrap();
        let record = ClaimRecord {
            executor_pid,
            executor_start_time: proc::stat(executor_pid).unwrap().start_time,
        };
        std::fs::write(
            state_dir.join("executor.claim.lost"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
    }

    /// An executor that claimed the start, launched the task and never
    /// reported: its whole session goes before the start counts as never
    /// made, so a new start cannot run beside the launched task.
    #[tokio::test]
    async fn a_claimed_start_never_reported_is_taken_down() {
        let root = tempfile::tempdir().unwrap();
        let mut executor = session_leader("sleep 1000 & exec sleep 1000");
        let pid = executor.id().unwrap() as i32;
        wait_for_members(pid, 2).await;
        claim_by(root.path(), pid);
        let found = find_start(&attempt(root.path()), Duration::from_millis(300)).await;
        assert!(matches!(found, Ok(None)), "{found:?}");
        assert_eq!(proc::running_session_members(pid), Vec::<i32>::new());
        let _ = executor.wait().await;
    }

    /// The executor died without a report (what is left of its session
    /// still runs): settled at once, the rest taken down.
    #[tokio::test]
    async fn a_claim_whose_executor_died_is_settled_without_waiting() {
        let root = tempfile::tempdir().unwrap();
        let mut executor = session_leader("sleep 1000 & read line");
        let pid = executor.id().unwrap() as i32;
        wait_for_members(pid, 2).await;
        claim_by(root.path(), pid);
        drop(executor.stdin.take());
        executor.wait().await.unwrap();
        assert_eq!(proc::running_session_members(pid).len(), 1);
        let started = Instant::now();
        let found = find_start(&attempt(root.path()), Duration::from_secs(20)).await;
        assert!(matches!(found, Ok(None)), "{found:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(proc::running_session_members(pid), Vec::<i32>::new());
    }

    /// A claim a client made (empty): the start was settled already.
    #[tokio::test]
    async fn a_clients_own_claim_is_settled() {
        let root = tempfile::tempdir().unwrap();
        let state_dir = root.path().join(STATE_DIR);
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::write(state_dir.join("executor.claim.lost"), b"").unwrap();
        let found = find_start(&attempt(root.path()), Duration::from_secs(20)).await;
        assert!(matches!(found, Ok(None)), "{found:?}");
    }
}
