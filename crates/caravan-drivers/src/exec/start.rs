//! Starting an exec task: its cgroup, its root's mount points, the
//! executor spec with its isolation section, and the executor's report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cgroup::{cgroup_name, Hierarchy, TaskCgroup};
use super::isolate::{self, Bind, Isolation, Link, SYSTEM_PATHS};
use super::user::{prepare_task_dirs, task_user, TaskUser};
use super::{Exec, ExecState, NAME};
use crate::executor::ExecutorSpec;
// raw_exec's files and claims, so that its claim-based find works for exec.
use crate::executor_client::{
    self as client, claim_name, command_and_args, executor_spec, prepare_state_dir,
};
use crate::{DriverError, TaskConfig, TaskHandle};

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
        let command = command_and_args(&config.config, NAME)?;
        let user = task_user(&config.user)?;
        let claim_file = claim_name(&config.attempt)?;
        let state_dir = prepare_state_dir(&config.task_dir)?;
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
                &user,
                command,
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
        user: &TaskUser,
        command: (String, Vec<String>),
        claim_file: Option<String>,
        state_dir: &Path,
        cgroup: TaskCgroup,
    ) -> Result<TaskHandle, DriverError> {
        let isolation = isolation(config, cgroup.clone())?;
        isolate::prepare_root(&isolation).map_err(DriverError::Start)?;
        let shared_alloc = config.alloc_dir.join("alloc");
        prepare_task_dirs(&config.task_dir, &shared_alloc, user)?;
        let env = translate_env(&config.env, &config.task_dir, &shared_alloc);
        let mut spec = executor_spec(config, command, env, state_dir, claim_file);
        // The resolved user: `nobody` for a task that names none.
        spec.user = Some(user.name.clone());
        let isolated = IsolatedSpec {
            spec: &spec,
            isolation: &isolation,
        };
        let started =
            client::start_executor(&self.executor_binary, state_dir, &config.attempt, &isolated)
                .await?;
        ExecState::new(started, cgroup).into_handle(config.id.clone())
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
}
