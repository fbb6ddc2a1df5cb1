//! Task drivers: how a task is started, waited on, signalled, stopped and
//! found again after the client restarts.
//!
//! The client's task runner holds an `Arc<dyn Driver>` and knows nothing of
//! how a driver works; a new driver is a new module implementing
//! [`Driver`], not a change across the client. The client persists each
//! task's [`TaskHandle`] (its `state` is the driver's own, opaque to the
//! client) so that after a restart, even after SIGKILL, it can hand the
//! handle back to [`Driver::recover`] instead of starting the task again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// What a driver check found (Nomad's driver fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub detected: bool,
    pub healthy: bool,
    pub description: String,
    /// Node attributes, e.g. `driver.raw_exec = "true"`.
    pub attributes: BTreeMap<String, String>,
}

/// Where a task's output goes: `<dir>/<task>.stdout.N` and
/// `<dir>/<task>.stderr.N`, at most `max_files` of each kept, each at most
/// `max_file_size_mb` (Nomad's `LogConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub max_files: u32,
    pub max_file_size_mb: u64,
}

/// The resources a task was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResources {
    pub cpu: u64,
    pub memory_mb: u64,
    pub memory_max_mb: u64,
}

/// Everything a driver needs to start one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// Unique per task instance: `<alloc_id>/<task>`.
    pub id: String,
    pub alloc_id: String,
    pub task_name: String,
    pub job_name: String,
    /// The task's driver `Config` block, as submitted.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The task's full environment (Nomad's `NOMAD_*` variables included).
    pub env: BTreeMap<String, String>,
    /// Run as this user, if set.
    pub user: String,
    /// `<alloc_dir>/<task>`: the working directory.
    pub task_dir: PathBuf,
    pub alloc_dir: PathBuf,
    pub logs: LogConfig,
    pub resources: TaskResources,
    /// Names this call of [`Driver::start`], unique per start (a restart
    /// is a new one): what [`Driver::find`] looks for. Letters, digits,
    /// `-` and `_` only; empty when the caller will never look.
    #[serde(default)]
    pub attempt: String,
    /// Host paths to mount into the task: the group's host volumes, as
    /// the task's `volume_mount` blocks ask. Resolved by the client, so a
    /// driver only mounts (or refuses, with a clear error, what it cannot).
    #[serde(default)]
    pub mounts: Vec<MountConfig>,
}

/// One host path mounted into a task (Nomad's `MountConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// The path on the host (the host volume's `path`).
    pub host_path: PathBuf,
    /// Where the task sees it: absolute inside an isolated task's root;
    /// relative paths are under the task directory.
    pub task_path: String,
    pub read_only: bool,
}

/// A start the client asked for, persisted before it calls
/// [`Driver::start`]: a client killed before it could save the handle asks
/// [`Driver::find`] whether that start happened, instead of starting the
/// task a second time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAttempt {
    /// The driver's name.
    pub driver: String,
    /// [`TaskConfig::id`].
    pub task_id: String,
    /// [`TaskConfig::attempt`].
    pub attempt: String,
    /// [`TaskConfig::task_dir`].
    pub task_dir: PathBuf,
}

impl StartAttempt {
    /// The attempt `config` names, for `driver`.
    pub fn of(driver: &str, config: &TaskConfig) -> Self {
        Self {
            driver: driver.to_string(),
            task_id: config.id.clone(),
            attempt: config.attempt.clone(),
            task_dir: config.task_dir.clone(),
        }
    }
}

/// A started task, as the client persists it to find it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskHandle {
    pub driver: String,
    /// [`TaskConfig::id`].
    pub task_id: String,
    /// The driver's own record (pids, container IDs, ...).
    pub state: serde_json::Value,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// How a task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitResult {
    pub exit_code: i32,
    /// The signal that killed it, 0 if it exited.
    pub signal: i32,
    pub oom_killed: bool,
}

impl ExitResult {
    pub fn successful(&self) -> bool {
        self.exit_code == 0 && self.signal == 0 && !self.oom_killed
    }
}

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The task's `Config` is wrong; the text says what and where.
    #[error("{0}")]
    InvalidConfig(String),
    /// An unknown signal name (the text contains `invalid signal`).
    #[error("invalid signal: {0:?}")]
    InvalidSignal(String),
    /// The task could not be started.
    #[error("failed to start task: {0}")]
    Start(String),
    /// The task (or what watched over it) is gone.
    #[error("task not found")]
    NotFound,
    #[error("{0} is not supported by this driver")]
    Unsupported(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One task driver. Every method may be called from any task; a driver
/// keeps what it needs to know about running tasks in their handles.
pub trait Driver: Send + Sync {
    /// The driver's name as jobspecs write it (`raw_exec`).
    fn name(&self) -> &'static str;

    /// Whether this node can run the driver's tasks, and its attributes.
    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint>;

    /// Starts the task; it keeps running if the client stops.
    fn start(&self, config: TaskConfig) -> BoxFuture<'_, Result<TaskHandle, DriverError>>;

    /// Resolves when the task has exited (at once if it already had).
    fn wait<'a>(&'a self, handle: &'a TaskHandle)
        -> BoxFuture<'a, Result<ExitResult, DriverError>>;

    /// Sends `signal` (a name such as `SIGTERM`, empty for SIGTERM), then
    /// SIGKILL if the task is still running after `timeout`. Returns once
    /// the task and every process it started are gone.
    fn stop<'a>(
        &'a self,
        handle: &'a TaskHandle,
        signal: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// The signal [`Driver::stop`] is given when the task names no
    /// `kill_signal`: raw_exec and exec interrupt first, as Nomad's do.
    fn default_kill_signal(&self) -> &'static str {
        "SIGINT"
    }

    /// Sends `signal` to the task.
    fn signal<'a>(
        &'a self,
        handle: &'a TaskHandle,
        signal: &'a str,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Settles a start whose handle was never saved (the client was killed
    /// while [`Driver::start`] ran): `Ok(Some(handle))` when that start
    /// launched the task (recover it as any handle: it may have exited
    /// since), `Ok(None)` when it did not and now never will, so starting
    /// the task again runs one copy of it. `Err` when the driver cannot
    /// tell: the start may still launch the task, so it must not be made
    /// again.
    fn find<'a>(
        &'a self,
        attempt: &'a StartAttempt,
    ) -> BoxFuture<'a, Result<Option<TaskHandle>, DriverError>>;

    /// Re-attaches to a task started before the client restarted.
    /// `Err(NotFound)` when nothing of it is left; a task that exited
    /// meanwhile recovers, and [`Driver::wait`] then answers its exit.
    fn recover<'a>(&'a self, handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Releases what the driver kept for an exited task.
    fn destroy<'a>(&'a self, handle: &'a TaskHandle) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Runs a command inside the running task (`nomad alloc exec`).
    /// `Err(NotFound)` when the task does not run.
    fn exec<'a>(
        &'a self,
        _handle: &'a TaskHandle,
        _request: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecSession, DriverError>> {
        Box::pin(std::future::ready(Err(DriverError::Unsupported("exec"))))
    }

    /// What the running task uses now (the stats endpoints).
    /// `Err(NotFound)` when nothing of it runs; a driver that cannot
    /// measure keeps this default.
    fn usage<'a>(
        &'a self,
        _handle: &'a TaskHandle,
    ) -> BoxFuture<'a, Result<TaskUsage, DriverError>> {
        Box::pin(std::future::ready(Err(DriverError::Unsupported(
            "resource usage",
        ))))
    }
}

pub mod docker;
pub mod exec;
pub mod executor;
mod executor_client;
pub mod logs;
pub mod proc;
pub mod raw_exec;
pub mod session;
pub mod signal;
pub mod usage;

pub use docker::Docker;
pub use exec::Exec;
pub use raw_exec::RawExec;
pub use session::{ExecOutput, ExecRequest, ExecSession, TerminalSize};
pub use usage::{ProcessUsage, TaskUsage};

/// A mutex's guard, even if a holder panicked (what it guards stays
/// consistent: every holder only inserts or removes whole entries).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A name made safe for an environment variable's (a port label in
/// `NOMAD_PORT_<label>`): anything but ASCII letters, digits and `_`
/// becomes `_`.
pub fn env_safe(key: &str) -> String {
    key.chars()
        .map(|c| match c.is_ascii_alphanumeric() || c == '_' {
            true => c,
            false => '_',
        })
        .collect()
}

/// The drivers this client offers, by name; what the task runner looks a
/// task's `driver` up in.
#[derive(Clone)]
pub struct DriverSet {
    drivers: BTreeMap<&'static str, std::sync::Arc<dyn Driver>>,
}

impl DriverSet {
    /// `executor_binary` is the `caravan` binary (it runs `caravan
    /// executor`); raw_exec is offered but fingerprints undetected unless
    /// `raw_exec_enabled`.
    pub fn new(executor_binary: PathBuf, raw_exec_enabled: bool) -> Self {
        let exec: std::sync::Arc<dyn Driver> =
            std::sync::Arc::new(Exec::new(executor_binary.clone()));
        let raw_exec: std::sync::Arc<dyn Driver> =
            std::sync::Arc::new(RawExec::new(executor_binary, raw_exec_enabled));
        let docker: std::sync::Arc<dyn Driver> = std::sync::Arc::new(Docker::from_env());
        Self {
            drivers: BTreeMap::from([
                (raw_exec.name(), raw_exec),
                (docker.name(), docker),
                (exec.name(), exec),
            ]),
        }
    }

    /// The driver named `name` (`raw_exec`), if this client has it.
    pub fn get(&self, name: &str) -> Option<std::sync::Arc<dyn Driver>> {
        self.drivers.get(name).cloned()
    }

    /// The names of the drivers, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.drivers.keys().copied()
    }

    /// Every driver's fingerprint, by name.
    pub async fn fingerprint_all(&self) -> BTreeMap<String, Fingerprint> {
        let mut fingerprints = BTreeMap::new();
        for (name, driver) in &self.drivers {
            fingerprints.insert(name.to_string(), driver.fingerprint().await);
        }
        fingerprints
    }
}

impl std::fmt::Debug for DriverSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DriverSet")
            .field("drivers", &self.drivers.keys().collect::<Vec<_>>())
            .finish()
    }
}
