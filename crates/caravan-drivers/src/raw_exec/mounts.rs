//! Host volumes for raw_exec tasks, as links in the task directory.

use std::path::{Component, Path};

use crate::DriverError;

/// raw_exec has no filesystem isolation, so it cannot mount a host volume
/// at an absolute destination: it links `<task_dir>/<destination>` (the
/// leading `/` dropped) to the host path instead, so the task reaches the
/// volume relative to its working directory. `read_only` cannot be
/// enforced without a mount: the task writes whatever its user may.
pub(super) fn link_mounts(
    task_dir: &Path,
    mounts: &[crate::MountConfig],
) -> Result<(), DriverError> {
    for mount in mounts {
        let relative = Path::new(mount.task_path.trim_start_matches('/'));
        let escapes = relative
            .components()
            .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
        if escapes || relative.as_os_str().is_empty() {
            return Err(DriverError::InvalidConfig(format!(
                "volume_mount destination {:?} must name a path inside the task directory",
                mount.task_path
            )));
        }
        let link = task_dir.join(relative);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A restarted task reuses its directory and its earlier link; only
        // a link is replaced, never a file or directory of the task's.
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(&link)?,
            Ok(_) => {
                return Err(DriverError::InvalidConfig(format!(
                    "volume_mount destination {:?} already exists in the task directory",
                    mount.task_path
                )))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        std::os::unix::fs::symlink(&mount.host_path, &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_links_in_the_task_directory() {
        let (task_dir, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mount = |task_path: &str| crate::MountConfig {
            host_path: host.path().to_path_buf(),
            task_path: task_path.into(),
            read_only: false,
        };
        let mounts = [mount("/data"), mount("./deep/er/data")];
        // Twice: a restart finds its links and makes them again.
        link_mounts(task_dir.path(), &mounts).unwrap();
        link_mounts(task_dir.path(), &mounts).unwrap();
        std::fs::write(task_dir.path().join("data/file"), "x").unwrap();
        assert_eq!(std::fs::read(host.path().join("file")).unwrap(), b"x");
        let deep = task_dir.path().join("deep/er/data");
        assert_eq!(std::fs::read_link(deep).unwrap(), host.path());

        for bad in ["/../etc", "a/../../b", "/", ""] {
            let error = link_mounts(task_dir.path(), &[mount(bad)]).unwrap_err();
            assert!(
                matches!(error, DriverError::InvalidConfig(_)),
                "{bad}: {error}"
            );
        }
        std::fs::create_dir(task_dir.path().join("local")).unwrap();
        let error = link_mounts(task_dir.path(), &[mount("/local")]).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
    }
}
