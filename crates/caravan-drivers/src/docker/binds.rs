//! Binds of task paths (`volumes = ["local/x:/x"]`, `mount { type =
//! "bind" }`), checked just before the container is created. The names
//! were checked when the config was read, but the task directory is the
//! task's: an earlier run of it may have left `local/r -> /` there, and the
//! engine, as root, would follow it. So each source is resolved, links and
//! all, and must still lie inside the task directory (outside its
//! reserved parts); the engine is given the resolved path, which holds no
//! link. A missing source is created (as the engine would), once its
//! nearest existing ancestor has passed the same check.

use std::path::{Path, PathBuf};

use super::config::TaskBind;
use crate::DriverError;

/// Parts of the task directory no bind may reach.
const RESERVED: &[&str] = &[".caravan", "private"];

fn refused(bind: &TaskBind) -> DriverError {
    DriverError::InvalidConfig(format!(
        "volume host path for {:?} resolves outside the task directory",
        bind.target
    ))
}

/// Whether `path` (resolved) is inside `root` (resolved) and not in a
/// reserved part of it, nor `root` itself.
fn inside(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    match relative.components().next() {
        None => false,
        Some(first) => !RESERVED
            .iter()
            .any(|reserved| first.as_os_str() == *reserved),
    }
}

/// The resolved source of `bind`, created if missing.
fn resolve(root: &Path, bind: &TaskBind) -> Result<PathBuf, DriverError> {
    let mut existing = bind.source.as_path();
    while !existing.exists() {
        existing = existing.parent().ok_or_else(|| refused(bind))?;
    }
    let resolved_existing = existing.canonicalize()?;
    if resolved_existing != root && !inside(root, &resolved_existing) {
        return Err(refused(bind));
    }
    if existing != bind.source {
        std::fs::create_dir_all(&bind.source)?;
    }
    let resolved = bind.source.canonicalize()?;
    if !inside(root, &resolved) {
        return Err(refused(bind));
    }
    Ok(resolved)
}

/// The engine's bind strings for `binds`, under `task_dir`.
pub fn resolve_binds(task_dir: &Path, binds: &[TaskBind]) -> Result<Vec<String>, DriverError> {
    let root = task_dir.canonicalize()?;
    binds
        .iter()
        .map(|bind| {
            let source = resolve(&root, bind)?;
            let mode = if bind.read_only { ":ro" } else { "" };
            Ok(format!("{}:{}{mode}", source.display(), bind.target))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: PathBuf) -> TaskBind {
        TaskBind {
            source,
            target: "/x".into(),
            read_only: true,
        }
    }

    #[test]
    fn sources_resolve_inside_the_task_directory_or_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let task = root.path().join("task");
        std::fs::create_dir_all(task.join("local/data")).unwrap();
        std::fs::create_dir_all(task.join(".caravan")).unwrap();
        let resolved = task.canonicalize().unwrap();

        let binds = resolve_binds(&task, &[bind(task.join("local/data"))]).unwrap();
        assert_eq!(binds, [format!("{}/local/data:/x:ro", resolved.display())]);
        // Missing: created, inside.
        let binds = resolve_binds(&task, &[bind(task.join("local/new/dir"))]).unwrap();
        assert!(binds[0].contains("/local/new/dir:/x"));
        assert!(task.join("local/new/dir").is_dir());

        // A link the task left, out of the directory or into its records.
        std::os::unix::fs::symlink("/", task.join("local/r")).unwrap();
        std::os::unix::fs::symlink(task.join(".caravan"), task.join("local/c")).unwrap();
        std::os::unix::fs::symlink(&task, task.join("local/t")).unwrap();
        for escape in [
            "local/r",
            "local/r/etc",
            "local/c",
            "local/t",
            "local/r/nonexistent/x",
        ] {
            let error = resolve_binds(&task, &[bind(task.join(escape))]).unwrap_err();
            assert!(
                error.to_string().contains("outside the task directory"),
                "{escape}"
            );
        }
        assert!(
            !Path::new("/nonexistent").exists(),
            "nothing created through a link"
        );
    }
}
