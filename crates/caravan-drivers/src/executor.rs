//! The executor: a small process (`caravan executor <spec-file>`) that
//! parents one task, as Nomad's executor does. It leaves the client's
//! session, so the task keeps running, its output keeps reaching the log
//! files and its exit is still recorded when the client stops or is
//! killed. The client learns what happened through two files the spec
//! names: the start report (the task's pid, or why it could not start)
//! and the exit record, both written atomically.
//!
//! A spec may also name a claim file, which the executor creates (never
//! opens an existing one) before it launches the task. A restarted client
//! that lost the handle of a start creates the same file to settle it:
//! whoever creates it first decides. If the client does, the executor
//! gives up without starting the task; if the executor does, the client
//! waits for its start report. So a start is either found or never
//! happens, never both. The executor's claim holds a [`ClaimRecord`] (the
//! client's is empty), so a client that finds the claim taken but no
//! report coming can take the executor's session down rather than start
//! the task beside whatever it launched.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};

use crate::exec::cgroup::TaskCgroup;
use crate::exec::isolate::{self, InitPlan, InitTask, Isolation};
use crate::logs::{RotatingLog, MIB};
use crate::{proc, LogConfig};

/// What the executor runs, and where it reports; written by the driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorSpec {
    /// Names the log files: `<logs.dir>/<task_name>.stdout.N`.
    pub task_name: String,
    pub command: String,
    pub args: Vec<String>,
    /// The task's whole environment; nothing else is inherited.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Run as this user (needs root unless it is the current user).
    #[serde(default)]
    pub user: Option<String>,
    pub logs: LogConfig,
    /// Where the [`StartReport`] goes.
    pub start_file: PathBuf,
    /// Where the [`ExitRecord`] goes.
    pub exit_file: PathBuf,
    /// The start's [`crate::TaskConfig::attempt`], echoed in the report.
    #[serde(default)]
    pub attempt: String,
    /// Created (it must not exist) before the task is launched; see the
    /// module's documentation.
    #[serde(default)]
    pub claim_file: Option<PathBuf>,
}

/// Whether the task started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StartReport {
    Started {
        executor_pid: i32,
        /// Also the task's process group.
        task_pid: i32,
        task_start_time: u64,
        /// The executor's session, which the task's group is in.
        session: i32,
        /// `/proc/<pid>/stat` field 22 of the executor.
        #[serde(default)]
        executor_start_time: u64,
        /// [`ExecutorSpec::attempt`].
        #[serde(default)]
        attempt: String,
    },
    Failed {
        error: String,
        /// [`ExecutorSpec::attempt`].
        #[serde(default)]
        attempt: String,
    },
}

/// The content of a claim file an executor created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Also its session: the executor leads one.
    pub executor_pid: i32,
    /// `/proc/<pid>/stat` field 22 of the executor.
    pub executor_start_time: u64,
}

/// How the task ended, written once it and its process group are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code; 128 + the signal when a signal killed it (Nomad's
    /// convention).
    pub exit_code: i32,
    /// The signal that killed it, 0 if it exited.
    pub signal: i32,
    /// Always true in a record the executor wrote; readers reject a file
    /// without it as not an exit record.
    pub task_exited: bool,
    /// The kernel's OOM killer killed a process of the task (isolated
    /// tasks only: their cgroup counts it).
    #[serde(default)]
    pub oom_killed: bool,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

/// Exit codes of the executor itself.
const EXIT_RECORDED: u8 = 0;
const EXIT_START_FAILED: u8 = 1;
const EXIT_BAD_SPEC: u8 = 2;
/// The claim file existed: the client settled this start as never made.
const EXIT_ABANDONED: u8 = 3;

/// How long the log copiers may take to drain after the task's group is
/// gone; a process that left the group (setsid) may hold a pipe open.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long an isolated task's cgroup may take to empty after SIGKILL.
const CGROUP_KILL_LIMIT: Duration = Duration::from_secs(10);

/// The section an exec task's spec adds to [`ExecutorSpec`]; a spec
/// without it (raw_exec's) runs the task unisolated.
#[derive(Debug, Clone, Default, Deserialize)]
struct IsolationSection {
    #[serde(default)]
    isolation: Option<Isolation>,
}

/// Runs the executor for the spec at `spec_path` and returns its exit code.
/// Diagnostics go to stderr, which the driver points at a file.
pub fn run(spec_path: &Path) -> u8 {
    let bytes = std::fs::read(spec_path).map_err(|error| error.to_string());
    // The executor of an isolated task runs this binary again as the
    // task's init (see [`crate::exec::isolate`]), with a plan as its spec.
    if let Some(plan) = bytes
        .as_ref()
        .ok()
        .and_then(|bytes| serde_json::from_slice::<InitPlan>(bytes).ok())
    {
        return isolate::run_init(plan);
    }
    let parsed = bytes.and_then(|bytes| {
        let spec = serde_json::from_slice::<ExecutorSpec>(&bytes);
        let section = serde_json::from_slice::<IsolationSection>(&bytes);
        spec.and_then(|spec| Ok((spec, section?.isolation)))
            .map_err(|error| error.to_string())
    });
    let (spec, isolation) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!(
                "caravan executor: cannot read {}: {error}",
                spec_path.display()
            );
            return EXIT_BAD_SPEC;
        }
    };
    // A session of its own: the client's terminal, process group and
    // session ending no longer reach the executor. It fails only when we
    // already lead a group, which a freshly spawned executor does not.
    if let Err(error) = nix::unistd::setsid() {
        eprintln!("caravan executor: setsid: {error}");
    }
    if let Some(claim) = &spec.claim_file {
        let executor_pid = std::process::id() as i32;
        let record = ClaimRecord {
            executor_pid,
            executor_start_time: proc::stat(executor_pid).map_or(0, |stat| stat.start_time),
        };
        // No report either way: the client that settled the start as
        // never made may be starting the task anew, with its own report.
        if let Err(error) = create_claim(claim, &record) {
            eprintln!(
                "caravan executor: not starting the task: cannot claim {}: {error}",
                claim.display()
            );
            return EXIT_ABANDONED;
        }
    }
    let plan_path = spec_path.with_extension("init.json");
    let (child, logs) = match launch(&spec, isolation.as_ref(), &plan_path) {
        Ok(launched) => launched,
        Err(error) => {
            let attempt = spec.attempt.clone();
            report_start(&spec, &StartReport::Failed { error, attempt });
            return EXIT_START_FAILED;
        }
    };
    let task_pid = child.id() as i32;
    let executor_pid = std::process::id() as i32;
    let started = StartReport::Started {
        executor_pid,
        task_pid,
        task_start_time: proc::stat(task_pid).map_or(0, |stat| stat.start_time),
        session: nix::unistd::getsid(None).map_or(0, Pid::as_raw),
        executor_start_time: proc::stat(executor_pid).map_or(0, |stat| stat.start_time),
        attempt: spec.attempt.clone(),
    };
    if !report_start(&spec, &started) {
        // Nobody will learn of this task: take it down again.
        let _ = killpg(Pid::from_raw(task_pid), Signal::SIGKILL);
    }
    let cgroup = isolation.as_ref().map(|isolation| &isolation.cgroup);
    let record = supervise(child, logs, cgroup);
    if let Err(error) = write_json(&spec.exit_file, &record) {
        eprintln!("caravan executor: cannot record the exit: {error}");
        return EXIT_START_FAILED;
    }
    EXIT_RECORDED
}

/// Creates `path` holding `record`, failing if it exists. The record is
/// written to a file of our own and then linked into place, so a client
/// never finds the executor's claim without the record in it.
fn create_claim(path: &Path, record: &ClaimRecord) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written
}

fn report_start(spec: &ExecutorSpec, report: &StartReport) -> bool {
    match write_json(&spec.start_file, report) {
        Ok(()) => true,
        Err(error) => {
            eprintln!("caravan executor: cannot write the start report: {error}");
            false
        }
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    caravan_files::write_private_atomic(path, &bytes)
}

/// The copiers of the task's stdout and stderr; each says when it is done.
struct LogCopiers {
    done: mpsc::Receiver<()>,
    count: usize,
}

/// Opens the logs and starts the task in a process group of its own,
/// isolated when `isolation` says how (its init's plan goes to
/// `plan_path`).
fn launch(
    spec: &ExecutorSpec,
    isolation: Option<&Isolation>,
    plan_path: &Path,
) -> Result<(Child, LogCopiers), String> {
    std::fs::create_dir_all(&spec.logs.dir).map_err(|error| {
        format!(
            "failed to create log directory {}: {error}",
            spec.logs.dir.display()
        )
    })?;
    let max_size = spec.logs.max_file_size_mb.saturating_mul(MIB);
    let open_log = |stream: &str| {
        let base = format!("{}.{stream}", spec.task_name);
        RotatingLog::open(&spec.logs.dir, &base, spec.logs.max_files, max_size)
            .map_err(|error| format!("failed to open log {base}: {error}"))
    };
    let (stdout_log, stderr_log) = (open_log("stdout")?, open_log("stderr")?);

    let mut child = match isolation {
        Some(isolation) => {
            let task = InitTask {
                command: spec.command.clone(),
                args: spec.args.clone(),
                env: spec.env.clone(),
                user: spec.user.clone(),
                isolation: isolation.clone(),
                status_fd: -1,
            };
            isolate::spawn(&task, plan_path)?
        }
        None => spawn_plain(spec)?,
    };

    let (sender, done) = mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>);
    let mut count = 0;
    for (pipe, log) in [(stdout, stdout_log), (stderr, stderr_log)] {
        if let Some(pipe) = pipe {
            let sender = sender.clone();
            count += 1;
            std::thread::spawn(move || {
                copy_to_log(pipe, log);
                let _ = sender.send(());
            });
        }
    }
    Ok((child, LogCopiers { done, count }))
}

/// Starts the task unisolated (raw_exec).
fn spawn_plain(spec: &ExecutorSpec) -> Result<Child, String> {
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The task leads a new group, so a signal to the group reaches
        // everything it starts, and the executor is not in it.
        .process_group(0);
    if let Some(user) = spec.user.as_deref().filter(|user| !user.is_empty()) {
        if let Some((uid, gid, groups)) = credentials(user)? {
            // SAFETY: only async-signal-safe system calls run between fork
            // and exec; the group list was resolved before the fork.
            unsafe {
                command.pre_exec(move || {
                    nix::unistd::setgroups(&groups)?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                    Ok(())
                });
            }
        }
    }
    command
        .spawn()
        .map_err(|error| format!("failed to run {:?}: {error}", spec.command))
}

/// The ids to switch to for `user`; `None` when we already are that user.
pub(crate) fn credentials(user: &str) -> Result<Option<(Uid, Gid, Vec<Gid>)>, String> {
    let entry = User::from_name(user)
        .map_err(|error| format!("failed to look up user {user:?}: {error}"))?
        .ok_or_else(|| format!("user {user:?} not found"))?;
    let current = Uid::effective();
    if entry.uid == current {
        return Ok(None);
    }
    if !current.is_root() {
        return Err(format!(
            "cannot run as user {user:?}: the client runs as uid {current}, not root"
        ));
    }
    let name = CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
    let groups = nix::unistd::getgrouplist(&name, entry.gid)
        .map_err(|error| format!("failed to list the groups of {user:?}: {error}"))?;
    Ok(Some((entry.uid, entry.gid, groups)))
}

/// Copies a pipe into its log until the pipe closes. A failing log does not
/// stop the copy: the task must never block on a full pipe.
fn copy_to_log(mut pipe: Box<dyn Read + Send>, mut log: RotatingLog) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut reported = false;
    loop {
        let read = match pipe.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                eprintln!("caravan executor: reading task output: {error}");
                return;
            }
        };
        if let Err(error) = log.append(&buffer[..read]) {
            if !reported {
                eprintln!(
                    "caravan executor: writing {}: {error}",
                    log.current_path().display()
                );
                reported = true;
            }
        }
    }
}

/// Waits for the task, clears what is left of its group, lets the logs
/// drain and says how it ended. An isolated task's cgroup is emptied too,
/// and removed once its OOM count is read.
fn supervise(mut child: Child, logs: LogCopiers, cgroup: Option<&TaskCgroup>) -> ExitRecord {
    let pid = Pid::from_raw(child.id() as i32);
    // Wait without reaping: while the exited task is a zombie its pid
    // still names the group, so the kill below cannot reach a stranger.
    while let Err(nix::errno::Errno::EINTR) =
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
    {}
    // Whatever the task started and left behind goes with it (Nomad's
    // executor destroys the process tree when the task ends).
    let _ = killpg(pid, Signal::SIGKILL);
    if let Some(cgroup) = cgroup {
        empty_cgroup(cgroup);
    }
    let status = loop {
        match child.wait() {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    let deadline = std::time::Instant::now() + LOG_DRAIN_LIMIT;
    for _ in 0..logs.count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if logs.done.recv_timeout(left).is_err() {
            eprintln!("caravan executor: task output still open; not waiting for it");
            break;
        }
    }
    let (exit_code, signal) = match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => (code, 0),
            (None, Some(signal)) => (128 + signal, signal),
            (None, None) => (-1, 0),
        },
        Err(error) => {
            eprintln!("caravan executor: waiting for the task: {error}");
            (-1, 0)
        }
    };
    let oom_killed = cgroup.is_some_and(|cgroup| {
        let oom_killed = cgroup.oom_killed();
        remove_cgroup(cgroup);
        oom_killed
    });
    ExitRecord {
        exit_code,
        signal,
        task_exited: true,
        oom_killed,
        finished_at: chrono::Utc::now(),
    }
}

/// SIGKILLs what is left in the task's cgroup (a process that left the
/// task's group is still in it) until it is empty, within a limit.
fn empty_cgroup(cgroup: &TaskCgroup) {
    let deadline = std::time::Instant::now() + CGROUP_KILL_LIMIT;
    while cgroup.kill_all() > 0 {
        if std::time::Instant::now() >= deadline {
            eprintln!("caravan executor: processes of the task's cgroup outlived SIGKILL");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the task's cgroup; a process only just killed may keep it
/// busy for a moment.
fn remove_cgroup(cgroup: &TaskCgroup) {
    let deadline = std::time::Instant::now() + CGROUP_KILL_LIMIT;
    loop {
        match cgroup.remove() {
            Ok(()) => return,
            Err(error) if std::time::Instant::now() >= deadline => {
                eprintln!("caravan executor: cannot remove the task's cgroup: {error}");
                return;
            }
            Err(_) => {
                cgroup.kill_all();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
