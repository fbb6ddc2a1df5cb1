//! `caravan alloc logs`: a task's stdout or stderr, whole, its tail, or
//! followed until the task ends.

use std::io::Write;
use std::time::Duration;

use std::future::Future;

use caravan_sdk::client_endpoints::{ByteStream, FrameStream, LogOptions, Origin};
use caravan_sdk::Client;

use super::{check_task, only_task, resolve, ShortId, BYTES_PER_LINE, DEFAULT_TAIL_LINES};
use crate::error::{CommandError, CommandResult};
use crate::flags::{FlagSet, Parsed};

const USAGE: &str = "Usage: caravan alloc logs [options] <allocation> <task>

  Stream the stdout or stderr of an allocation's task. A task need not be
  named when the allocation has only one.

Logs Specific Options:

  -stderr
    Display stderr logs.

  -stdout
    Display stdout logs (the default).

  -task <task-name>
    The task to read the logs of.

  -job
    Take the first argument as a job ID (or a prefix of one) rather than
    an allocation ID, and use one of the job's allocations, preferring a
    running one.

  -group <group-name>
    With -job, use an allocation of this task group.

  -verbose
    Show full-length IDs.

  -f
    Follow the logs until the task ends.

  -tail
    Show the logs contents with offsets relative to the end of the logs.
    Without -n or -c, the last 10 lines.

  -n <lines>
    With -tail, this many lines.

  -c <bytes>
    With -tail, this many bytes.
";

/// With `-tail -f`, what arrives first is the backlog the tail asked for
/// (cut to its last `-n` lines) and what follows is new output. The backlog
/// is taken as over once as many bytes as asked for arrived, or once no
/// data came for this long, or at the latest after [`TAIL_COLLECT_LIMIT`].
const TAIL_SETTLE: Duration = Duration::from_millis(500);
const TAIL_COLLECT_LIMIT: Duration = Duration::from_secs(2);

pub fn logs(args: &[String]) -> CommandResult {
    let flags = FlagSet::new("alloc logs", USAGE)
        .bool("verbose")
        .bool("job")
        .bool("tail")
        .bool("f")
        .bool("stderr")
        .bool("stdout")
        .value("n")
        .value("c")
        .value("task")
        .value("group");
    let parsed = flags.parse(args)?;
    match parsed.args.len() {
        0 if parsed.bool("job") => return Err(flags.usage_error("A job ID is required")),
        0 => return Err(flags.usage_error("An allocation ID is required")),
        1 | 2 => {}
        _ => return Err(flags.usage_error("This command takes one or two arguments")),
    }
    let tail = tail_size(&parsed, &flags)?;
    if parsed.bool("stderr") && parsed.bool("stdout") {
        return Err(CommandError::failed(
            "Unable to support both stdout and stderr",
        ));
    }
    let kind = if parsed.bool("stderr") {
        "stderr"
    } else {
        "stdout"
    };
    let client = parsed.client()?;
    crate::block_on(async {
        let ident = match parsed.bool("job") {
            true => job_alloc_id(&client, &parsed.args[0], parsed.get("group")).await?,
            false => parsed.args[0].clone(),
        };
        let alloc = resolve(&client, &ident, ShortId::AllocId, parsed.bool("verbose")).await?;
        let task = match (
            parsed.get("task").filter(|task| !task.is_empty()),
            parsed.arg(1),
        ) {
            (Some(task), _) => check_task(&alloc, task).map(|_| task.to_string()),
            (None, Some("")) => return Err(CommandError::failed("Task name required")),
            (None, Some(task)) => Ok(task.to_string()),
            (None, None) => only_task(&alloc),
        }
        .map_err(|error| CommandError::failed(format!("Failed to validate task: {error}")))?;
        let options = LogOptions {
            follow: parsed.bool("f"),
            origin: if parsed.bool("tail") {
                Origin::End
            } else {
                Origin::Start
            },
            offset: if parsed.bool("tail") { tail.offset } else { 0 },
        };
        let read_failed =
            |error: String| CommandError::failed(format!("Failed to read {kind} file: {error}"));
        let mut stream = client
            .client()
            .logs_stream(&alloc.id, &task, kind, options)
            .await
            .map_err(|error| read_failed(format!("error reading file: {error}")))?;
        let lines = if parsed.bool("tail") {
            tail.lines
        } else {
            None
        };
        copy_tail(lines, tail.offset, &mut stream)
            .await
            .map_err(|error| read_failed(format!("error following logs: {error}")))
    })
}

/// What `-tail`, `-n` and `-c` ask for.
pub(crate) struct TailSize {
    /// Bytes back from the end to start reading at.
    pub offset: u64,
    /// Lines to keep of what was read first, when counted in lines.
    pub lines: Option<u64>,
}

pub(crate) fn tail_size(parsed: &Parsed, flags: &FlagSet) -> Result<TailSize, CommandError> {
    let number = |name: &str| -> Result<Option<u64>, CommandError> {
        match parsed.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<i64>()
                .map(|n| u64::try_from(n).ok())
                .map_err(|_| {
                    flags.usage_error(format!(
                        "invalid value {text:?} for flag -{name}: parse error"
                    ))
                }),
        }
    };
    let (lines, bytes) = (number("n")?, number("c")?);
    match (lines, bytes) {
        (Some(_), Some(_)) => Err(CommandError::failed("Both -n and -c are not allowed")),
        (Some(lines), None) => Ok(TailSize {
            offset: lines.saturating_mul(BYTES_PER_LINE),
            lines: Some(lines),
        }),
        (None, Some(bytes)) => Ok(TailSize {
            offset: bytes,
            lines: None,
        }),
        (None, None) => Ok(TailSize {
            offset: DEFAULT_TAIL_LINES * BYTES_PER_LINE,
            lines: Some(DEFAULT_TAIL_LINES),
        }),
    }
}

/// A body read piece by piece: a log (raw bytes) or a file stream
/// (frames decoded).
pub(crate) trait Chunks {
    fn next(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, caravan_sdk::Error>>;
}

impl Chunks for ByteStream {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, caravan_sdk::Error> {
        Ok(self.next_chunk().await?.map(|chunk| chunk.to_vec()))
    }
}

impl Chunks for FrameStream {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, caravan_sdk::Error> {
        self.next_data().await
    }
}

/// Copies `stream` to stdout until it ends. With `lines`, the backlog
/// that arrives first (`backlog` bytes at most, see [`TAIL_SETTLE`]) is
/// cut to its last `lines`.
pub(crate) async fn copy_tail(
    lines: Option<u64>,
    backlog: u64,
    stream: &mut impl Chunks,
) -> Result<(), caravan_sdk::Error> {
    let mut out = std::io::stdout();
    if let Some(lines) = lines {
        let (head, ended) = collect_backlog(stream, backlog).await?;
        let _ = out.write_all(last_lines(&head, lines));
        let _ = out.flush();
        if ended {
            return Ok(());
        }
    }
    while let Some(chunk) = stream.next().await? {
        let _ = out.write_all(&chunk);
        let _ = out.flush();
    }
    Ok(())
}

/// What arrives first of `stream`: until `backlog` bytes came, the stream
/// paused or ended, or [`TAIL_COLLECT_LIMIT`] passed; and whether it ended.
async fn collect_backlog(
    stream: &mut impl Chunks,
    backlog: u64,
) -> Result<(Vec<u8>, bool), caravan_sdk::Error> {
    let deadline = tokio::time::Instant::now() + TAIL_COLLECT_LIMIT;
    let mut head = Vec::new();
    while (head.len() as u64) < backlog {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(TAIL_SETTLE);
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Ok(Some(chunk))) => head.extend_from_slice(&chunk),
            Ok(Ok(None)) => return Ok((head, true)),
            Ok(Err(error)) => return Err(error),
            Err(_) => break,
        }
    }
    Ok((head, false))
}

/// The last `count` lines of `data` (a final newline ends a line, it does
/// not start one).
pub(crate) fn last_lines(data: &[u8], count: u64) -> &[u8] {
    if count == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (index, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == count {
                return &data[index + 1..];
            }
        }
    }
    data
}

/// An allocation of the job `job` (an ID or a prefix of one, found in its
/// namespace as the job commands find it) and of `group`, if given: a
/// running one if any.
pub(crate) async fn job_alloc_id(
    client: &Client,
    job: &str,
    group: Option<&str>,
) -> Result<String, CommandError> {
    let found = crate::job::resolve(client, job.trim()).await?;
    let job = found.id.as_str();
    let (mut allocs, _) = client
        .jobs()
        .allocations(job, &crate::job::in_namespace(&found.namespace))
        .await
        .map_err(|error| {
            CommandError::failed(format!(
                "Error fetching allocations: error querying job {job:?}: {error}"
            ))
        })?;
    if allocs.is_empty() {
        return Err(CommandError::failed(format!(
            "Error fetching allocations: job {job:?} doesn't exist or it has no allocations"
        )));
    }
    if let Some(group) = group.filter(|group| !group.is_empty()) {
        allocs.retain(|alloc| alloc.task_group == group);
        if allocs.is_empty() {
            return Err(CommandError::failed(format!(
                "Error fetching allocations: task group {group:?} doesn't exist or it has no allocations"
            )));
        }
    }
    // Nomad picks at random among the running ones; the newest will do.
    allocs.sort_by_key(|alloc| std::cmp::Reverse(alloc.create_index));
    let running = allocs.iter().find(|alloc| alloc.client_status == "running");
    Ok(running.unwrap_or(&allocs[0]).id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"partial\nx\n", 1), b"x\n");
        assert_eq!(last_lines(b"a\n", 0), b"");
    }

    /// Chunks handed out as fast as asked, never ending (a busy task).
    struct Busy(u64);

    impl Chunks for Busy {
        async fn next(&mut self) -> Result<Option<Vec<u8>>, caravan_sdk::Error> {
            self.0 += 1;
            Ok(Some(format!("line{}\n", self.0).into_bytes()))
        }
    }

    #[tokio::test]
    async fn the_backlog_of_a_busy_stream_ends_at_its_size() {
        let mut busy = Busy(0);
        let (head, ended) = collect_backlog(&mut busy, 20).await.unwrap();
        assert!(!ended);
        assert_eq!(head, b"line1\nline2\nline3\nline4\n");
        assert_eq!(last_lines(&head, 1), b"line4\n");
        let overflow = tail_size_of(&["-n", "9223372036854775807"]);
        assert_eq!(overflow, u64::MAX);
    }

    fn tail_size_of(args: &[&str]) -> u64 {
        let flags = FlagSet::new("alloc logs", USAGE).value("n").value("c");
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let parsed = flags.parse(&args).unwrap();
        tail_size(&parsed, &flags).unwrap().offset
    }
}
