//! Starting an exec task: its cgroup, its root's mount points, the
//! executor spec with its isolation section, and the executor's report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use super::cgroup::{cgroup_name, Hierarchy, TaskCgroup};
use super::isolate::{self, Bind, Isolation, Link, SYSTEM_PATHS};
use super::{Backoff, Exec, ExecState};
use crate::executor::{ExecutorSpec, StartReport};
use crate::raw_exec::STATE_DIR;
use crate::{proc, DriverError, TaskConfig, TaskHandle};

/// raw_exec's file names, so that its claim-based find works for exec.
const START_FILE: &str = "executor.started.json";
const EXIT_FILE: &str = "executor.exit.json";
const EXECUTOR_LOG: &str = "executor.log";
/// How long an executor may take to report that the task started.
const START_LIMIT: Duration = Duration::from_secs(30);

/// An executor spec with its isolation section.
#[derive(Serialize)]
struct IsolatedSpec<'a> {
    #[serde(flatten)]
    spec: &'a ExecutorSpec,
    isolation: &'a Isolation,
}

impl Exec {
    pub(super) async fn start_task(&self, config: TaskConfig) -> Result<TaskHandle, DriverError> {
        if let Some(why) = Self::unusable() {
            return Err(DriverError::Start(format!(
                "the exec driver cannot run here: {why}"
            )));
        }
        let hierarchy = Hierarchy::detect().map_err(DriverError::Start)?;
        let (command, args) = command_and_args(&config.config)?;
        let claim_file = claim_name(&config.attempt)?;
        let state_dir = config.task_dir.join(STATE_DIR);
        caravan_files::create_private_dir(&state_dir)?;
        let (start_file, exit_file) = (state_dir.join(START_FILE), state_dir.join(EXIT_FILE));
        // A restarted task reuses its directory: the last run's reports
        // must not be read as this one's.
        for stale in [&start_file, &exit_file] {
            match std::fs::remove_file(stale) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into())
                }
                _ => {}
            }
        }
        let name = cgroup_name(&config.id);
        // A cgroup left by an earlier run of this task whose executor died.
        let stale = hierarchy.cgroup(&name);
        if stale.exists() {
            super::remove_cgroup(&stale).await?;
        }
        let cgroup = hierarchy
            .create(&name, &config.resources)
            .map_err(DriverError::Start)?;
        let started = self
            .launch(
                &config,
                command,
                args,
                claim_file,
                &state_dir,
                cgroup.clone(),
            )
            .await;
        if started.is_err() {
            // Nothing of the task may be left running beside a new start.
            cgroup.kill_all();
            let _ = super::remove_cgroup(&cgroup).await;
        }
        started
    }

    async fn launch(
        &self,
        config: &TaskConfig,
        command: String,
        args: Vec<String>,
        claim_file: Option<String>,
        state_dir: &Path,
        cgroup: TaskCgroup,
    ) -> Result<TaskHandle, DriverError> {
        let isolation = isolation(config, cgroup.clone())?;
        isolate::prepare_root(&isolation).map_err(DriverError::Start)?;
        let spec = ExecutorSpec {
            task_name: config.task_name.clone(),
            command,
            args,
            env: translate_env(
                &config.env,
                &config.task_dir,
                &config.alloc_dir.join("alloc"),
            ),
            cwd: config.task_dir.clone(),
            user: Some(config.user.clone()).filter(|user| !user.is_empty()),
            logs: config.logs.clone(),
            start_file: state_dir.join(START_FILE),
            exit_file: state_dir.join(EXIT_FILE),
            attempt: config.attempt.clone(),
            claim_file: claim_file.map(|name| state_dir.join(name)),
        };
        let spec_path = match config.attempt.is_empty() {
            true => state_dir.join("executor.json"),
            false => state_dir.join(format!("executor.spec.{}.json", config.attempt)),
        };
        let bytes = serde_json::to_vec_pretty(&IsolatedSpec {
            spec: &spec,
            isolation: &isolation,
        })
        .map_err(std::io::Error::other)?;
        caravan_files::write_private_atomic(&spec_path, &bytes)?;

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
            (executor_pid, executor_start_time),
            &spec.start_file,
            &config.attempt,
            &executor_log_path,
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
                // Reap the executor when it ends; after a client restart
                // it is no longer ours to reap.
                tokio::spawn(async move {
                    let _ = executor.wait().await;
                });
                let state = ExecState {
                    executor_pid,
                    executor_start_time,
                    task_pid,
                    task_start_time,
                    session,
                    state_dir: state_dir.to_path_buf(),
                    exit_file: spec.exit_file,
                    cgroup,
                };
                state.into_handle(config.id.clone())
            }
        }
    }
}

/// How the task is isolated: the host's system directories read-only
/// (links stay links, as `/bin -> usr/bin`), the shared alloc directory,
/// then the task's mounts.
fn isolation(config: &TaskConfig, cgroup: TaskCgroup) -> Result<Isolation, DriverError> {
    let (mut binds, mut links) = (Vec::new(), Vec::new());
    for path in SYSTEM_PATHS {
        match std::fs::read_link(path) {
            Ok(points_to) => links.push(Link {
                target: path.to_string(),
                points_to: relative_link(path, &points_to),
            }),
            Err(_) if Path::new(path).is_dir() => binds.push(Bind {
                source: PathBuf::from(path),
                target: path.to_string(),
                read_only: true,
            }),
            Err(_) => {}
        }
    }
    binds.push(Bind {
        source: config.alloc_dir.join("alloc"),
        target: "/alloc".into(),
        read_only: false,
    });
    for mount in &config.mounts {
        let target = match mount.task_path.starts_with('/') {
            true => mount.task_path.clone(),
            false => format!("/{}", mount.task_path),
        };
        if isolate::inside(&config.task_dir, &target).is_none() {
            return Err(DriverError::InvalidConfig(format!(
                "invalid mount path {:?}: an absolute path without \"..\" is needed",
                mount.task_path
            )));
        }
        if !mount.host_path.exists() {
            return Err(DriverError::Start(format!(
                "cannot mount {}: it does not exist",
                mount.host_path.display()
            )));
        }
        binds.push(Bind {
            source: mount.host_path.clone(),
            target,
            read_only: mount.read_only,
        });
    }
    Ok(Isolation {
        root: config.task_dir.clone(),
        hostname: hostname(&config.task_name, &config.alloc_id),
        cgroup,
        binds,
        links,
        cwd: "/".into(),
    })
}

/// The link at `at` (absolute) pointing to `points_to`, made relative:
/// the same inside the task's root, and, seen from the host through the
/// task directory, never a way out of it.
fn relative_link(at: &str, points_to: &Path) -> PathBuf {
    let Ok(below_root) = points_to.strip_prefix("/") else {
        return points_to.to_path_buf();
    };
    let depth = Path::new(at).components().count().saturating_sub(2);
    let mut relative: PathBuf = std::iter::repeat_n("..", depth).collect();
    relative.push(below_root);
    relative
}

/// `<task>-<first 8 characters of the alloc ID>`, as a valid host name.
fn hostname(task: &str, alloc_id: &str) -> String {
    let raw = format!("{task}-{}", alloc_id.chars().take(8).collect::<String>());
    let name: String = raw
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(63)
        .collect();
    let name = name.trim_matches('-');
    match name.is_empty() {
        true => "task".into(),
        false => name.to_string(),
    }
}

/// The task's environment with values that are host paths into the task
/// or alloc directory made into the paths the task sees (`NOMAD_TASK_DIR`
/// becomes `/local`). Only whole values are rewritten, not lists of paths.
pub(super) fn translate_env(
    env: &BTreeMap<String, String>,
    task_dir: &Path,
    shared_alloc: &Path,
) -> BTreeMap<String, String> {
    let translate = |value: &str| {
        let path = Path::new(value);
        if !path.is_absolute() {
            return None;
        }
        for (host, inside) in [(shared_alloc, "/alloc"), (task_dir, "/")] {
            match path.strip_prefix(host) {
                Ok(rest) if rest.as_os_str().is_empty() => return Some(inside.to_string()),
                Ok(rest) => return Some(Path::new(inside).join(rest).display().to_string()),
                Err(_) => {}
            }
        }
        None
    };
    env.iter()
        .map(|(key, value)| {
            let value = translate(value).unwrap_or_else(|| value.clone());
            (key.clone(), value)
        })
        .collect()
}

/// `command` (required) and `args` from the task's `config` block.
fn command_and_args(
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<(String, Vec<String>), DriverError> {
    let command = match config.get("command") {
        Some(serde_json::Value::String(command)) if !command.trim().is_empty() => command.clone(),
        _ => {
            return Err(DriverError::InvalidConfig(
                "missing command: the exec config needs \"command\" (a string)".into(),
            ))
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
        DriverError::InvalidConfig("exec config: \"args\" must be a list of strings".into())
    })?;
    Ok((command, args))
}

/// The claim file's name for `attempt`, as raw_exec names it.
fn claim_name(attempt: &str) -> Result<Option<String>, DriverError> {
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

/// Waits for the report of `attempt` from `executor`, our child; an
/// executor that dies or hangs first goes with its whole session.
async fn await_start_report(
    executor: &mut tokio::process::Child,
    (executor_pid, executor_start_time): (i32, u64),
    start_file: &Path,
    attempt: &str,
    executor_log: &Path,
) -> Result<StartReport, DriverError> {
    let deadline = Instant::now() + START_LIMIT;
    let mut backoff = Backoff::new();
    loop {
        if let Some(report) = report_of(start_file, attempt)? {
            return Ok(report);
        }
        if let Some(status) = executor.try_wait()? {
            if let Some(report) = report_of(start_file, attempt)? {
                return Ok(report);
            }
            kill_session(executor_pid, executor_start_time).await;
            let said = std::fs::read_to_string(executor_log).unwrap_or_default();
            return Err(DriverError::Start(format!(
                "the executor exited ({status}) before starting the task: {}",
                said.trim()
            )));
        }
        if Instant::now() >= deadline {
            let _ = executor.start_kill();
            kill_session(executor_pid, executor_start_time).await;
            let _ = executor.wait().await;
            return Err(DriverError::Start(format!(
                "the executor did not start the task within {START_LIMIT:?}"
            )));
        }
        backoff.sleep().await;
    }
}

fn report_of(start_file: &Path, attempt: &str) -> Result<Option<StartReport>, DriverError> {
    let bytes = match std::fs::read(start_file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let report: StartReport = serde_json::from_slice(&bytes).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable {}: {error}", start_file.display()),
        )
    })?;
    let of = match &report {
        StartReport::Started { attempt, .. } | StartReport::Failed { attempt, .. } => attempt,
    };
    Ok((of == attempt).then_some(report))
}

/// SIGKILLs what is left of the executor's session (the executor leads
/// it); the task's cgroup is emptied by the caller.
async fn kill_session(pid: i32, start_time: u64) {
    if pid <= 1 || proc::stat(pid).is_some_and(|stat| stat.start_time != start_time) {
        return;
    }
    let deadline = Instant::now() + super::KILL_LIMIT;
    let mut backoff = Backoff::new();
    loop {
        let members = proc::running_session_members(pid);
        if members.is_empty() || Instant::now() >= deadline {
            return;
        }
        for member in members {
            let _ = nix::sys::signal::kill(Pid::from_raw(member), Signal::SIGKILL);
        }
        backoff.sleep().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_paths_into_the_task_become_what_the_task_sees() {
        let env = BTreeMap::from([
            (
                "NOMAD_TASK_DIR".to_string(),
                "/data/a1/web/local".to_string(),
            ),
            (
                "NOMAD_SECRETS_DIR".to_string(),
                "/data/a1/web/secrets".to_string(),
            ),
            ("NOMAD_ALLOC_DIR".to_string(), "/data/a1/alloc".to_string()),
            ("ROOT".to_string(), "/data/a1/web".to_string()),
            ("SHARED".to_string(), "/data/a1/alloc/".to_string()),
            ("OTHER".to_string(), "/data/a1/web2".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ]);
        let translated =
            translate_env(&env, Path::new("/data/a1/web"), Path::new("/data/a1/alloc"));
        assert_eq!(translated["NOMAD_TASK_DIR"], "/local");
        assert_eq!(translated["NOMAD_SECRETS_DIR"], "/secrets");
        assert_eq!(translated["NOMAD_ALLOC_DIR"], "/alloc");
        assert_eq!(translated["ROOT"], "/");
        assert_eq!(translated["SHARED"], "/alloc");
        assert_eq!(translated["OTHER"], "/data/a1/web2");
        assert_eq!(translated["PATH"], "/usr/bin:/bin");
    }

    #[test]
    fn absolute_links_become_relative() {
        assert_eq!(
            relative_link("/bin", Path::new("usr/bin")),
            Path::new("usr/bin")
        );
        assert_eq!(
            relative_link("/bin", Path::new("/usr/bin")),
            Path::new("usr/bin")
        );
        assert_eq!(
            relative_link("/run/resolvconf", Path::new("/etc/resolvconf/run")),
            Path::new("../etc/resolvconf/run")
        );
    }

    #[test]
    fn hostnames_are_valid() {
        assert_eq!(hostname("web", "0b6e1a36-3b9e"), "web-0b6e1a36");
        assert_eq!(hostname("My_Task", "ab"), "my-task-ab");
        assert_eq!(hostname("__", ""), "task");
        assert!(hostname(&"x".repeat(100), "a").len() <= 63);
    }

    #[test]
    fn command_is_required_and_args_are_strings() {
        let block = |value: serde_json::Value| value.as_object().cloned().unwrap_or_default();
        let error = command_and_args(&block(serde_json::json!({}))).unwrap_err();
        assert!(error.to_string().contains("missing command"), "{error}");
        let error =
            command_and_args(&block(serde_json::json!({"command": "x", "args": [1]}))).unwrap_err();
        assert!(error.to_string().contains("list of strings"), "{error}");
        let (command, args) =
            command_and_args(&block(serde_json::json!({"command": "x", "args": ["a"]}))).unwrap();
        assert_eq!((command.as_str(), args), ("x", vec!["a".to_string()]));
    }
}
