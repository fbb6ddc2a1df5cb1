//! Who an exec task runs as, and the directories it may write. As
//! Nomad's exec driver: `nobody` when the task names no `user`, `root`
//! refused (Nomad's client option `user.denylist` defaults to `root` for
//! exec), since root in the host's user namespace could undo the
//! isolation (remount the read-only binds, mknod the disk, ...).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

use crate::DriverError;

/// The user a task that names none runs as.
pub const DEFAULT_USER: &str = "nobody";

/// Users no exec task may run as.
const DENIED: &[&str] = &["root"];

/// The task's subdirectories its user owns (Nomad's); `private/` and the
/// driver's `.caravan` stay root's.
const OWNED_DIRS: &[&str] = &["local", "secrets", "tmp"];

/// The shared directories every task of the allocation writes, whoever
/// it runs as; sticky, so none removes another's files.
const SHARED_DIRS: &[&str] = &["data", "tmp"];
const SHARED_MODE: u32 = 0o1777;

/// A resolved task user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TaskUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// The user a task asking for `requested` (empty: none) runs as; refused
/// when it is root, by name or by uid.
pub(super) fn task_user(requested: &str) -> Result<TaskUser, DriverError> {
    let name = match requested {
        "" => DEFAULT_USER,
        name => name,
    };
    let denied = |what: String| {
        DriverError::InvalidConfig(format!(
            "running as user {what} is not allowed for the exec driver on this client"
        ))
    };
    if DENIED.contains(&name) {
        return Err(denied(format!("{name:?}")));
    }
    let entry = User::from_name(name)
        .map_err(|error| DriverError::Start(format!("failed to look up user {name:?}: {error}")))?
        .ok_or_else(|| DriverError::Start(format!("user {name:?} not found")))?;
    if entry.uid.is_root() {
        return Err(denied(format!("{name:?} (uid 0)")));
    }
    Ok(TaskUser {
        name: name.to_string(),
        uid: entry.uid,
        gid: entry.gid,
    })
}

/// Gives `user` the task's own directories and opens the allocation's
/// shared ones (`shared_alloc`, `<alloc_dir>/alloc`) to every task, so a
/// task not run as root can write `/local`, `/secrets`, `/tmp` and
/// `/alloc/data`. Only the directories themselves change hands, not what
/// the client put in them. A link is refused rather than followed: the
/// client runs as root.
pub(super) fn prepare_task_dirs(
    task_dir: &Path,
    shared_alloc: &Path,
    user: &TaskUser,
) -> Result<(), DriverError> {
    for name in OWNED_DIRS {
        if let Some(dir) = existing_dir(&task_dir.join(name))? {
            std::os::unix::fs::lchown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .map_err(|error| start_error("cannot hand over", dir, error))?;
        }
    }
    for name in SHARED_DIRS {
        if let Some(dir) = existing_dir(&shared_alloc.join(name))? {
            // Checked by existing_dir: no link to follow here.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SHARED_MODE))
                .map_err(|error| start_error("cannot open up", dir, error))?;
        }
    }
    Ok(())
}

/// `path` when it is a directory (not a link to one), `None` when it is
/// missing (the client made none: nothing to hand over).
fn existing_dir(path: &Path) -> Result<Option<&Path>, DriverError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(Some(path)),
        Ok(_) => Err(DriverError::Start(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(start_error("cannot inspect", path, error)),
    }
}

fn start_error(what: &str, path: &Path, error: std::io::Error) -> DriverError {
    DriverError::Start(format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn nobody_by_default_and_never_root() {
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let user = task_user("").unwrap();
        assert_eq!((user.name.as_str(), user.uid), ("nobody", nobody.uid));
        let error = task_user("root").unwrap_err();
        assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "running as user \"root\" is not allowed for the exec driver on this client"
        );
        let error = task_user("caravan-no-such-user").unwrap_err();
        assert!(error.to_string().contains("not found"), "{error}");
    }

    #[test]
    fn the_task_owns_its_dirs_and_every_task_writes_the_shared_ones() {
        if !Uid::effective().is_root() {
            eprintln!("skipping: handing directories over needs root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let (task_dir, shared) = (root.path().join("web"), root.path().join("alloc"));
        for dir in ["local", "secrets", "tmp", "private", ".caravan"] {
            std::fs::create_dir_all(task_dir.join(dir)).unwrap();
        }
        for dir in ["data", "tmp", "logs"] {
            std::fs::create_dir_all(shared.join(dir)).unwrap();
        }
        let user = task_user("nobody").unwrap();
        prepare_task_dirs(&task_dir, &shared, &user).unwrap();
        let meta = |path: &Path| std::fs::symlink_metadata(path).unwrap();
        for dir in OWNED_DIRS {
            assert_eq!(meta(&task_dir.join(dir)).uid(), user.uid.as_raw(), "{dir}");
        }
        for dir in ["private", ".caravan"] {
            assert_eq!(meta(&task_dir.join(dir)).uid(), 0, "{dir}");
        }
        for dir in SHARED_DIRS {
            assert_eq!(meta(&shared.join(dir)).mode() & 0o7777, SHARED_MODE);
        }
        assert_ne!(meta(&shared.join("logs")).mode() & 0o7777, SHARED_MODE);

        // A link where a directory should be is refused, not followed.
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::remove_dir(task_dir.join("local")).unwrap();
        std::os::unix::fs::symlink(&outside, task_dir.join("local")).unwrap();
        let error = prepare_task_dirs(&task_dir, &shared, &user).unwrap_err();
        assert!(error.to_string().contains("not a directory"), "{error}");
        assert_eq!(meta(&outside).uid(), 0);
    }
}
