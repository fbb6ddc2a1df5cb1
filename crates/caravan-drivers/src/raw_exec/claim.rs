//! Settling a start whose handle the client lost, through the start's
//! claim file (see [`crate::executor`]).

use std::time::Instant;

use super::{
    read_json, Backoff, RawExec, RawExecState, EXIT_FILE, NAME, START_FILE, START_LIMIT, STATE_DIR,
};
use crate::executor::StartReport;
use crate::{DriverError, StartAttempt, TaskHandle};

impl RawExec {
    /// Settles a start whose handle was lost through its claim file (see
    /// [`crate::executor`]): created here, the start's executor (if it
    /// ever runs) gives up; already created, the executor launched the task
    /// and its start report names it.
    pub(super) async fn find_task(
        &self,
        attempt: &StartAttempt,
    ) -> Result<Option<TaskHandle>, DriverError> {
        let claim_file = claim_name(&attempt.attempt)?.ok_or_else(|| {
            DriverError::InvalidConfig("a start without an attempt cannot be found".into())
        })?;
        let state_dir = attempt.task_dir.join(STATE_DIR);
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(state_dir.join(claim_file));
        match claimed {
            // Settled: that start never launches the task.
            Ok(_) => return Ok(None),
            // The start never got as far as its state directory.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error.into()),
        }
        let start_file = state_dir.join(START_FILE);
        let deadline = Instant::now() + START_LIMIT;
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
                    return Ok(Some(TaskHandle {
                        driver: NAME.to_string(),
                        task_id: attempt.task_id.clone(),
                        state: serde_json::to_value(&state).map_err(std::io::Error::other)?,
                        started_at: chrono::Utc::now(),
                    }));
                }
                Some(StartReport::Failed {
                    attempt: reported, ..
                }) if reported == attempt.attempt => return Ok(None),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Start(format!(
                    "the executor of start {} claimed it but did not report within {START_LIMIT:?}",
                    attempt.attempt
                )));
            }
            backoff.sleep().await;
        }
    }
}

/// The claim file's name for `attempt` (none for an empty one, which no
/// one will look for); an attempt must be a plain name.
pub(super) fn claim_name(attempt: &str) -> Result<Option<String>, DriverError> {
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
