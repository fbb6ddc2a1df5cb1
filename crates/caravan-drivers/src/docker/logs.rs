//! Copies a container's output into the task's rotated log files
//! (`alloc/logs/<task>.stdout.N`), as the other drivers' executor does,
//! so the client's logs endpoints read every driver's output the same way.
//!
//! The engine keeps the container's output itself, so a copy interrupted
//! by a client restart or an engine restart resumes where it stopped: the
//! engine is asked for timestamped entries, the last copied timestamp is
//! written to a progress file beside the task after each entry is copied
//! (one small write in place, no rename: a killed client loses nothing of
//! it, and repeats at most the one entry it was copying), and on resuming
//! every entry at or before it is skipped. (The engine's `since` is in
//! whole seconds; the timestamps, fixed-width RFC 3339 with nanoseconds,
//! order exactly.)

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::logs::{RotatingLog, MIB};
use crate::LogConfig;

/// How long to wait before asking the engine again after it failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a copy needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTarget {
    pub container_id: String,
    pub task_name: String,
    pub logs: LogConfig,
    /// `<task_dir>/.caravan/docker-logs.progress`.
    pub progress_file: PathBuf,
}

/// The timestamp of the last entry copied, empty when nothing was.
fn read_progress(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .unwrap_or_default()
}

/// Records the last entry copied, in place.
fn write_progress(file: &File, stamp: &str) {
    let written = file
        .write_all_at(stamp.as_bytes(), 0)
        .and_then(|()| file.set_len(stamp.len() as u64));
    if let Err(error) = written {
        tracing::warn!(%error, "cannot record the docker log copy's progress");
    }
}

/// Splits `<timestamp> <output>` as the engine sends it with timestamps.
fn split_timestamp(message: &[u8]) -> Option<(&str, &[u8])> {
    let space = message.iter().position(|byte| *byte == b' ')?;
    let stamp = std::str::from_utf8(&message[..space]).ok()?;
    Some((stamp, &message[space + 1..]))
}

/// Whole seconds since the epoch of an RFC 3339 timestamp.
fn epoch_seconds(stamp: &str) -> Option<i32> {
    let parsed = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    i32::try_from(parsed.timestamp()).ok()
}

/// Copies until the container has stopped and its output is drained. An
/// engine that stops answering is asked again every second, for as long
/// as the copy is not aborted (the driver aborts it when the task is
/// destroyed).
pub async fn copy(docker: bollard::Docker, target: LogTarget) {
    let open = |stream: &str| {
        RotatingLog::open(
            &target.logs.dir,
            &format!("{}.{stream}", target.task_name),
            target.logs.max_files,
            target.logs.max_file_size_mb.saturating_mul(MIB),
        )
    };
    let (mut stdout, mut stderr) = match (open("stdout"), open("stderr")) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, task = %target.task_name, "cannot open the task's log files");
            return;
        }
    };
    let mut last = read_progress(&target.progress_file);
    let progress = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&target.progress_file)
    {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(%error, task = %target.task_name, "cannot open the docker log progress file");
            return;
        }
    };
    loop {
        let since = epoch_seconds(&last).unwrap_or(0);
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since,
            timestamps: true,
            ..Default::default()
        };
        let mut stream = docker.logs(&target.container_id, Some(options));
        let mut failed = false;
        while let Some(item) = stream.next().await {
            let (message, to_stderr) = match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    (message, false)
                }
                Ok(LogOutput::StdErr { message }) => (message, true),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(error) => {
                    tracing::debug!(%error, "docker log stream interrupted");
                    failed = true;
                    break;
                }
            };
            let Some((stamp, data)) = split_timestamp(&message) else {
                continue;
            };
            // Copied before an interruption: skip it.
            if !last.is_empty() && stamp <= last.as_str() {
                continue;
            }
            let log = if to_stderr { &mut stderr } else { &mut stdout };
            if let Err(error) = log.append(data) {
                tracing::warn!(%error, task = %target.task_name, "cannot write the task's log");
            }
            last = stamp.to_string();
            write_progress(&progress, &last);
        }
        // The stream ends when the container stops (drained) or when the
        // engine goes away; only the first ends the copy.
        if !failed {
            match docker.inspect_container(&target.container_id, None).await {
                Ok(inspect) => {
                    let running = inspect
                        .state
                        .and_then(|state| state.running)
                        .unwrap_or(false);
                    if !running {
                        return;
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return,
                Err(_) => {}
            }
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_and_order() {
        let (stamp, data) =
            split_timestamp(b"2026-12-07T19:00:01.000000001Z hello world\n").unwrap();
        assert_eq!(stamp, "2026-12-07T19:00:01.000000001Z");
        assert_eq!(data, b"hello world\n");
        assert_eq!(epoch_seconds(stamp), Some(1_796_670_001));
        // Fixed width: string order is time order.
        assert!("2026-12-07T19:00:01.000000002Z" > stamp);
        assert!(split_timestamp(b"no-space").is_none());
    }

    #[test]
    fn progress_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress");
        assert_eq!(read_progress(&path), "");
        let file = File::create(&path).unwrap();
        write_progress(&file, "2026-12-07T19:00:01.000000001Z");
        write_progress(&file, "2026-12-07T19:00:02Z");
        assert_eq!(read_progress(&path), "2026-12-07T19:00:02Z");
    }
}
