//! docker: runs a task as a Docker container through the Docker Engine
//! API (bollard over the engine's unix socket, the API version negotiated
//! with the engine, which may be older than bollard's).
//!
//! The engine, not a process of Caravan's, parents the container, so a
//! task outlives the client by itself; the handle records the container's
//! ID and where its output is copied, and a restarted client re-attaches
//! by inspecting the container and resuming the copy of its output
//! ([`logs`]). A start whose handle was lost is found by the labels every
//! container carries (`io.caravan.attempt`).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::errors::Error as EngineError;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, RemoveContainerOptions,
    StatsOptions, WaitContainerOptions,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::signal::parse_signal;
use crate::{
    Driver, DriverError, ExitResult, Fingerprint, ProcessUsage, StartAttempt, TaskConfig,
    TaskHandle, TaskUsage,
};

mod binds;
pub mod config;
mod exec;
mod find;
mod fingerprint;
pub mod logs;

use config::container_spec;
use find::record_path;
use logs::LogTarget;

/// The driver's name in jobspecs and node attributes.
pub const NAME: &str = "docker";

/// The engine's default socket.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long one engine request may take to answer (a pull answers at
/// once and then streams).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long connecting to the engine may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How long `wait` keeps asking an engine that does not answer before it
/// gives the task up (an engine restart takes seconds).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);
/// How long a fingerprint waits for the engine.
const FINGERPRINT_LIMIT: Duration = Duration::from_secs(5);
/// How long `wait` lets the output copy drain after the container ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How often `stop` looks whether the container has ended.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long to wait before asking an engine that failed again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Container creates and starts in flight at once.
const STARTS_AT_ONCE: usize = 8;
/// Files of the driver's own, under `<task_dir>/.caravan`.
const STATE_DIR: &str = ".caravan";
const PROGRESS_FILE: &str = "docker-logs.progress";

/// The docker driver.
pub struct Docker {
    /// The engine's unix socket.
    socket: String,
    /// The negotiated client, made on first use (the engine may come up
    /// after the client).
    engine: tokio::sync::Mutex<Option<bollard::Docker>>,
    /// Whether the engine ever answered: a lost engine is then unhealthy
    /// rather than undetected (Nomad's rule).
    seen: AtomicBool,
    /// The output copies running, by task ID.
    copies: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Bounds the creates and starts in flight: the engine serialises much
    /// of them, and a burst of fifty at once is slower than eight at a
    /// time (BENCHMARKS.md, "Task drivers").
    starting: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Docker")
            .field("socket", &self.socket)
            .finish()
    }
}

/// [`TaskHandle::state`] of a docker task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerState {
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    /// Where its output goes; resumed after a restart.
    pub logs: LogTarget,
}

impl DockerState {
    fn into_handle(self, task_id: String) -> Result<TaskHandle, DriverError> {
        Ok(TaskHandle {
            driver: NAME.to_string(),
            task_id,
            state: serde_json::to_value(&self).map_err(std::io::Error::other)?,
            started_at: chrono::Utc::now(),
        })
    }
}

fn state_of(handle: &TaskHandle) -> Result<DockerState, DriverError> {
    serde_json::from_value(handle.state.clone())
        .map_err(|error| DriverError::InvalidConfig(format!("not a docker task handle: {error}")))
}

/// The engine's own status code and message, for a match.
fn status_of(error: &EngineError) -> Option<(u16, &str)> {
    match error {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message.as_str())),
        _ => None,
    }
}

fn not_found(error: &EngineError) -> bool {
    status_of(error).is_some_and(|(code, _)| code == 404)
}

/// What the engine said, without the client's wrapping.
fn engine_text(error: &EngineError) -> String {
    match status_of(error) {
        Some((_, message)) => message.to_string(),
        None => error.to_string(),
    }
}

fn unreachable(error: impl std::fmt::Display) -> DriverError {
    DriverError::Start(format!("Failed to connect to docker daemon: {error}"))
}

impl Docker {
    /// The engine at `DOCKER_HOST` (a `unix://` address) or the default
    /// socket.
    pub fn from_env() -> Self {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| host.starts_with("unix://"))
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        Self::new(socket)
    }

    /// The engine at `socket` (`unix:///path` or a path).
    pub fn new(socket: String) -> Self {
        Self {
            socket,
            engine: tokio::sync::Mutex::new(None),
            seen: AtomicBool::new(false),
            copies: Mutex::new(HashMap::new()),
            starting: tokio::sync::Semaphore::new(STARTS_AT_ONCE),
        }
    }

    /// The negotiated engine client.
    async fn engine(&self) -> Result<bollard::Docker, EngineError> {
        let mut engine = self.engine.lock().await;
        if let Some(client) = engine.as_ref() {
            return Ok(client.clone());
        }
        let client = bollard::Docker::connect_with_unix(
            &self.socket,
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )?;
        // Bounded: the lock is held meanwhile, and a hung socket must not
        // hold every other call (the fingerprint among them) for minutes.
        let client = tokio::time::timeout(CONNECT_LIMIT, client.negotiate_version())
            .await
            .map_err(|_| EngineError::RequestTimeoutError)??;
        *engine = Some(client.clone());
        Ok(client)
    }

    /// Pulls `image` unless it is present (or `force`); there may be no
    /// registry, so a present image is never pulled again.
    async fn ensure_image(
        &self,
        engine: &bollard::Docker,
        image: &str,
        force: bool,
        limit: Duration,
    ) -> Result<(), DriverError> {
        if !force {
            match engine.inspect_image(image).await {
                Ok(_) => return Ok(()),
                Err(error) if not_found(&error) => {}
                Err(error) => return Err(unreachable(error)),
            }
        }
        let options = CreateImageOptions {
            from_image: Some(config::image_reference(image)),
            ..Default::default()
        };
        let pull = async {
            let mut pull = engine.create_image(Some(options), None, None);
            while let Some(progress) = pull.next().await {
                match progress {
                    Ok(info) => {
                        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                            return Err(DriverError::Start(format!(
                                "Failed to pull `{image}`: {error}"
                            )));
                        }
                    }
                    Err(error) => {
                        return Err(DriverError::Start(format!(
                            "Failed to pull `{image}`: {}",
                            engine_text(&error)
                        )))
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(limit, pull).await.unwrap_or_else(|_| {
            Err(DriverError::Start(format!(
                "Failed to pull `{image}`: timed out after {} s (image_pull_timeout)",
                limit.as_secs()
            )))
        })
    }

    /// Removes whatever container holds `name` (a previous run of the
    /// task: a restart reuses the name).
    async fn remove_by_name(engine: &bollard::Docker, name: &str) -> Result<(), DriverError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match engine.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(error) if not_found(&error) => Ok(()),
            Err(error) => Err(DriverError::Start(format!(
                "failed to remove the old container {name}: {}",
                engine_text(&error)
            ))),
        }
    }

    async fn start_task(&self, config: TaskConfig) -> Result<TaskHandle, DriverError> {
        let mut spec = container_spec(&config)?;
        let task_binds = binds::resolve_binds(&config.task_dir, &spec.task_binds)?;
        if let Some(host) = spec.body.host_config.as_mut() {
            host.binds.get_or_insert_with(Vec::new).extend(task_binds);
        }
        let engine = self.engine().await.map_err(unreachable)?;
        self.ensure_image(&engine, &spec.image, spec.force_pull, spec.pull_timeout)
            .await?;
        let state_dir = config.task_dir.join(STATE_DIR);
        caravan_files::create_private_dir(&state_dir)?;
        let progress_file = state_dir.join(PROGRESS_FILE);
        // A new container's output starts from nothing.
        match std::fs::remove_file(&progress_file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
        // As many creates and starts at once as the engine does well with.
        let _permit = self
            .starting
            .acquire()
            .await
            .map_err(|_| DriverError::Start("the docker driver is shutting down".into()))?;
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let create = || engine.create_container(Some(options.clone()), spec.body.clone());
        let created = match create().await {
            // The name is taken: a previous run of this task (a restart
            // reuses the name) or a start that was never settled.
            Err(error) if status_of(&error).is_some_and(|(code, _)| code == 409) => {
                Self::remove_by_name(&engine, &spec.name).await?;
                create().await
            }
            other => other,
        }
        .map_err(|error| {
            DriverError::Start(format!(
                "Failed to create container: {}",
                engine_text(&error)
            ))
        })?;
        if let Err(error) = engine.start_container(&created.id, None).await {
            let _ = Self::remove_by_name(&engine, &created.id).await;
            return Err(DriverError::Start(format!(
                "Failed to start container {}: {}",
                spec.name,
                engine_text(&error)
            )));
        }
        let state = DockerState {
            container_id: created.id.clone(),
            container_name: spec.name,
            image: spec.image,
            logs: LogTarget {
                container_id: created.id,
                task_name: config.task_name.clone(),
                logs: config.logs.clone(),
                progress_file,
            },
        };
        self.copy_output(&config.id, &engine, &state);
        // Saved where `find` looks, should the client lose the handle.
        let record = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
        caravan_files::write_private_atomic(
            &record_path(&config.task_dir, &config.attempt),
            &record,
        )?;
        state.into_handle(config.id)
    }

    /// Starts copying the container's output, unless a copy runs.
    fn copy_output(&self, task_id: &str, engine: &bollard::Docker, state: &DockerState) {
        let mut copies = crate::lock(&self.copies);
        if copies.get(task_id).is_some_and(|copy| !copy.is_finished()) {
            return;
        }
        let copy = tokio::spawn(logs::copy(engine.clone(), state.logs.clone()));
        copies.insert(task_id.to_string(), copy);
    }

    async fn wait_task(&self, handle: &TaskHandle) -> Result<ExitResult, DriverError> {
        let state = state_of(handle)?;
        let mut answered = Instant::now();
        loop {
            if answered.elapsed() > UNREACHABLE_LIMIT {
                return Err(DriverError::Start(format!(
                    "Failed to connect to docker daemon for {} s while waiting for container {}",
                    UNREACHABLE_LIMIT.as_secs(),
                    state.container_name
                )));
            }
            let engine = match self.engine().await {
                Ok(engine) => engine,
                Err(_) => {
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            let options = WaitContainerOptions {
                condition: "not-running".to_string(),
            };
            // The engine answers when the container stops; a non-zero exit
            // comes back as an error, so the exit is read by inspecting.
            let waited = engine
                .wait_container(&state.container_id, Some(options))
                .next()
                .await;
            if let Some(Err(error)) = &waited {
                if not_found(error) {
                    return Err(DriverError::NotFound);
                }
            }
            match engine.inspect_container(&state.container_id, None).await {
                Ok(inspect) => {
                    answered = Instant::now();
                    let container = inspect.state.unwrap_or_default();
                    if container.running.unwrap_or(false) {
                        // The wait was cut (the engine restarting): again.
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                    self.drain_output(&handle.task_id).await;
                    let exit_code = container.exit_code.unwrap_or(0);
                    return Ok(ExitResult {
                        exit_code: i32::try_from(exit_code).unwrap_or(i32::MAX),
                        signal: 0,
                        oom_killed: container.oom_killed.unwrap_or(false),
                    });
                }
                Err(error) if not_found(&error) => return Err(DriverError::NotFound),
                Err(_) => tokio::time::sleep(RETRY_AFTER).await,
            }
        }
    }

    /// Lets the output copy of a stopped container finish, bounded.
    async fn drain_output(&self, task_id: &str) {
        let copy = crate::lock(&self.copies).remove(task_id);
        if let Some(mut copy) = copy {
            if tokio::time::timeout(DRAIN_LIMIT, &mut copy).await.is_err() {
                copy.abort();
            }
        }
    }

    async fn running(engine: &bollard::Docker, id: &str) -> Result<bool, DriverError> {
        match engine.inspect_container(id, None).await {
            Ok(inspect) => Ok(inspect
                .state
                .and_then(|state| state.running)
                .unwrap_or(false)),
            Err(error) if not_found(&error) => Ok(false),
            Err(error) => Err(unreachable(error)),
        }
    }

    async fn kill(engine: &bollard::Docker, id: &str, signal: &str) -> Result<bool, DriverError> {
        let options = KillContainerOptions {
            signal: signal.to_string(),
        };
        match engine.kill_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            // Not found, or not running (409): nothing to signal.
            Err(error) if status_of(&error).is_some_and(|(code, _)| code == 404 || code == 409) => {
                Ok(false)
            }
            Err(error) => Err(DriverError::Start(format!(
                "failed to signal container: {}",
                engine_text(&error)
            ))),
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
        let engine = self.engine().await.map_err(unreachable)?;
        if Self::kill(&engine, &state.container_id, signal.as_str()).await? {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline && Self::running(&engine, &state.container_id).await? {
                tokio::time::sleep(STOP_POLL).await;
            }
            if Self::running(&engine, &state.container_id).await? {
                Self::kill(&engine, &state.container_id, "SIGKILL").await?;
            }
        }
        Ok(())
    }

    async fn recover_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = state_of(handle)?;
        let engine = self.engine().await.map_err(unreachable)?;
        match engine.inspect_container(&state.container_id, None).await {
            Ok(_) => {
                // Running or not, copy what it wrote while no one did.
                self.copy_output(&handle.task_id, &engine, &state);
                Ok(())
            }
            Err(error) if not_found(&error) => Err(DriverError::NotFound),
            Err(error) => Err(unreachable(error)),
        }
    }

    async fn destroy_task(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        let state = state_of(handle)?;
        if let Some(copy) = crate::lock(&self.copies).remove(&handle.task_id) {
            copy.abort();
        }
        let engine = self.engine().await.map_err(unreachable)?;
        Self::remove_by_name(&engine, &state.container_id).await?;
        if let Some(state_dir) = state.logs.progress_file.parent() {
            match std::fs::remove_dir_all(state_dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn usage_of(&self, handle: &TaskHandle) -> Result<TaskUsage, DriverError> {
        let state = state_of(handle)?;
        let engine = self.engine().await.map_err(unreachable)?;
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let stats = match engine
            .stats(&state.container_id, Some(options))
            .next()
            .await
        {
            Some(Ok(stats)) => stats,
            Some(Err(error)) if not_found(&error) => return Err(DriverError::NotFound),
            Some(Err(error)) => return Err(unreachable(error)),
            None => return Err(DriverError::NotFound),
        };
        let usage = stats.cpu_stats.and_then(|cpu| cpu.cpu_usage);
        let seconds = |nanos: Option<u64>| nanos.unwrap_or(0) as f64 / 1e9;
        Ok(TaskUsage {
            processes: vec![ProcessUsage {
                pid: 0,
                rss_bytes: stats.memory_stats.and_then(|m| m.usage).unwrap_or(0),
                user_seconds: seconds(usage.as_ref().and_then(|u| u.usage_in_usermode)),
                system_seconds: seconds(usage.as_ref().and_then(|u| u.usage_in_kernelmode)),
            }],
        })
    }
}

impl Driver for Docker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(self.fingerprint_engine())
    }

    /// What `docker stop` sends.
    fn default_kill_signal(&self) -> &'static str {
        "SIGTERM"
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
            let engine = self.engine().await.map_err(unreachable)?;
            match Self::kill(&engine, &state.container_id, signal.as_str()).await? {
                true => Ok(()),
                false => Err(DriverError::NotFound),
            }
        })
    }

    fn exec<'a>(
        &'a self,
        handle: &'a TaskHandle,
        request: crate::ExecRequest,
    ) -> BoxFuture<'a, Result<crate::ExecSession, DriverError>> {
        Box::pin(self.exec_task(handle, request))
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
    ) -> BoxFuture<'a, Result<TaskUsage, DriverError>> {
        Box::pin(self.usage_of(handle))
    }
}
