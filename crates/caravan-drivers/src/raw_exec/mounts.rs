//! Host volumes for raw_exec tasks, as links in the task directory.
//!
//! The client runs as root and the task directory holds directories the
//! task may write (`tmp/` is world-writable), so a task can plant links
//! there for a later start to follow: `tmp/x -> /lib64` makes a
//! destination `tmp/x/lib` create or replace things on the host. The
//! destination is therefore walked one component at a time through open
//! directory descriptors, never following a link (`O_NOFOLLOW`), with
//! missing directories made one at a time: what the walk reaches is
//! always inside the task directory, whatever the task does meanwhile.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use crate::DriverError;

/// raw_exec has no filesystem isolation, so it cannot mount a host volume
/// at an absolute destination: it links `<task_dir>/<destination>` (the
/// leading `/` dropped) to the host path instead, so the task reaches the
/// volume relative to its working directory. A read-only mount is refused:
/// without a mount nothing could keep the task from writing the volume.
pub(super) fn link_mounts(
    task_dir: &Path,
    mounts: &[crate::MountConfig],
) -> Result<(), DriverError> {
    for mount in mounts {
        if mount.read_only {
            return Err(DriverError::InvalidConfig(format!(
                "raw_exec cannot mount host volume {} at {:?} read-only: it has no \
                 filesystem isolation (use a writable volume_mount, or the exec or docker driver)",
                mount.host_path.display(),
                mount.task_path
            )));
        }
        let relative = Path::new(mount.task_path.trim_start_matches('/'));
        let escapes = relative
            .components()
            .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
        let names: Vec<&OsStr> = relative
            .components()
            .filter_map(|part| match part {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        let Some((link_name, parents)) = names.split_last().filter(|_| !escapes) else {
            return Err(DriverError::InvalidConfig(format!(
                "volume_mount destination {:?} must name a path inside the task directory",
                mount.task_path
            )));
        };
        let refuse = |why: String| {
            DriverError::InvalidConfig(format!(
                "volume_mount destination {:?}: {why}",
                mount.task_path
            ))
        };
        let mut dir = open_dir(AT_FDCWD, task_dir)
            .map_err(|errno| std::io::Error::other(format!("{}: {errno}", task_dir.display())))?;
        for name in parents {
            dir = enter_or_make(&dir, name).map_err(refuse)?;
        }
        // A restarted task reuses its directory and its earlier link; only
        // a link is replaced, never a file or directory of the task's.
        match fstatat(&dir, *link_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) if is_link_mode(stat.st_mode) => {
                unlinkat(&dir, *link_name, UnlinkatFlags::NoRemoveDir)
                    .map_err(std::io::Error::from)?;
            }
            Ok(_) => {
                return Err(refuse(
                    "it already exists in the task directory".to_string(),
                ))
            }
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(std::io::Error::from(errno).into()),
        }
        symlinkat(mount.host_path.as_path(), &dir, *link_name).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// A directory opened without following a link at its last component.
fn open_dir<Fd: std::os::fd::AsFd>(
    at: Fd,
    path: &(impl nix::NixPath + ?Sized),
) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    openat(at, path, flags, Mode::empty())
}

/// The directory `name` in `dir`, made if missing; a link or anything
/// but a directory is refused.
fn enter_or_make(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, String> {
    match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(format!("cannot create {name:?}: {errno}")),
    }
    open_dir(dir, name).map_err(|errno| match errno {
        // What O_NOFOLLOW (ELOOP) or O_DIRECTORY (ENOTDIR) say of a link.
        Errno::ELOOP | Errno::ENOTDIR if is_link(dir, name) => {
            format!("{name:?} is a symbolic link")
        }
        Errno::ENOTDIR => format!("{name:?} is not a directory"),
        errno => format!("cannot open {name:?}: {errno}"),
    })
}

fn is_link(dir: &OwnedFd, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|stat| is_link_mode(stat.st_mode))
}

fn is_link_mode(mode: nix::libc::mode_t) -> bool {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(host: &Path, task_path: &str) -> crate::MountConfig {
        crate::MountConfig {
            host_path: host.to_path_buf(),
            task_path: task_path.into(),
            read_only: false,
        }
    }

    #[test]
    fn mounts_are_links_in_the_task_directory() {
        let (task_dir, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mounts = [
            mount(host.path(), "/data"),
            mount(host.path(), "./deep/er/data"),
        ];
        // Twice: a restart finds its links and makes them again.
        link_mounts(task_dir.path(), &mounts).unwrap();
        link_mounts(task_dir.path(), &mounts).unwrap();
        std::fs::write(task_dir.path().join("data/file"), "x").unwrap();
        assert_eq!(std::fs::read(host.path().join("file")).unwrap(), b"x");
        let deep = task_dir.path().join("deep/er/data");
        assert_eq!(std::fs::read_link(deep).unwrap(), host.path());

        for bad in ["/../etc", "a/../../b", "/", ""] {
            let error = link_mounts(task_dir.path(), &[mount(host.path(), bad)]).unwrap_err();
            assert!(
                matches!(error, DriverError::InvalidConfig(_)),
                "{bad}: {error}"
            );
        }
        std::fs::create_dir(task_dir.path().join("local")).unwrap();
        let error = link_mounts(task_dir.path(), &[mount(host.path(), "/local")]).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
    }

    /// A link the task planted on the way to a destination is never
    /// followed: nothing is created, removed or linked through it.
    #[test]
    fn links_on_the_way_are_refused() {
        let (task_dir, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("victim")).unwrap();
        std::fs::create_dir(task_dir.path().join("tmp")).unwrap();
        std::os::unix::fs::symlink(outside.path(), task_dir.path().join("tmp/x")).unwrap();
        for destination in ["tmp/x/new/data", "tmp/x/data", "tmp/x/victim/data"] {
            let error =
                link_mounts(task_dir.path(), &[mount(host.path(), destination)]).unwrap_err();
            assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
        let left: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(left, ["victim"]);
        assert_eq!(
            std::fs::read_dir(outside.path().join("victim"))
                .unwrap()
                .count(),
            0
        );
        // A file in the way is no directory either.
        std::fs::write(task_dir.path().join("file"), "").unwrap();
        let error = link_mounts(task_dir.path(), &[mount(host.path(), "file/data")]).unwrap_err();
        assert!(error.to_string().contains("not a directory"), "{error}");
    }

    #[test]
    fn read_only_mounts_are_refused() {
        let (task_dir, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut read_only = mount(host.path(), "/data");
        read_only.read_only = true;
        let error = link_mounts(task_dir.path(), &[read_only]).unwrap_err();
        assert!(matches!(error, DriverError::InvalidConfig(_)), "{error}");
        assert!(error.to_string().contains("read-only"), "{error}");
        assert!(
            error.to_string().contains("no filesystem isolation"),
            "{error}"
        );
        assert!(!task_dir.path().join("data").exists());
    }
}
