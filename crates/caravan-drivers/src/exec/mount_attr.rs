//! Locking down a bound tree in the task's mount namespace. A recursive
//! bind copies the submounts under its source (`/usr/local` on its own
//! disk, ...), and a remount of the bind's top changes that one mount
//! only: every submount would stay writable, with setuid binaries and
//! device nodes working. `mount_setattr(2)` with `AT_RECURSIVE` sets the
//! flags on the whole tree at once (Linux 5.12 and later); on an older
//! kernel each mount under the target that the mountinfo lists
//! is remounted in turn.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

/// `struct mount_attr` of `<linux/mount.h>` (libc does not define it).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Makes every mount at and under `target` `nosuid` and `nodev`, and
/// read-only too when `read_only`: no setuid binary regains root and no
/// device node opens there, whatever the task finds in the tree.
pub(super) fn lock_down_tree(target: &Path, read_only: bool) -> Result<(), String> {
    let set = match set_recursively(target, read_only) {
        Ok(()) => return Ok(()),
        Err(errno) => errno,
    };
    // Whatever kept the system call from working (ENOSYS before 5.12, a
    // seccomp filter), remounting each mount does the same, more slowly.
    remount_each(target, read_only).map_err(|error| {
        format!(
            "cannot lock down the mounts under {}: mount_setattr: {}; remounting: {error}",
            target.display(),
            std::io::Error::from(set)
        )
    })
}

fn set_recursively(target: &Path, read_only: bool) -> nix::Result<()> {
    let path = super::isolate::c_path(target).map_err(|_| nix::errno::Errno::EINVAL)?;
    let mut attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if read_only {
        attr_set |= MOUNT_ATTR_RDONLY;
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a live struct of
    // the size passed; the kernel only reads them during the call.
    let result = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_mount_setattr,
            nix::libc::AT_FDCWD,
            path.as_ptr(),
            nix::libc::AT_RECURSIVE as nix::libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(result).map(drop)
}

/// The fallback: remounts each mount at or under `target` with the flags
/// added, keeping the ones it has that matter (`ro`, `noexec`; the
/// kernel keeps the atime flags of a remount itself).
fn remount_each(target: &Path, read_only: bool) -> Result<(), String> {
    // mountinfo shows resolved paths.
    let target = std::fs::canonicalize(target)
        .map_err(|error| format!("cannot resolve {}: {error}", target.display()))?;
    // The calling thread's: the mount namespace is a thread's, and a
    // thread other than the main one may have entered a new one.
    let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .map_err(|error| format!("cannot read /proc/thread-self/mountinfo: {error}"))?;
    let mounts = mounts_under(&mountinfo, &target);
    // The target's own mount must be among them, or nothing was done.
    if !mounts.iter().any(|(point, _)| *point == target) {
        return Err(format!("{} is not a mount point", target.display()));
    }
    // A mount hidden under another at the same path is remounted through
    // the top one again; the task cannot reach it anyway.
    for (point, options) in mounts {
        let has = |option: &str| options.split(',').any(|o| o == option);
        let mut flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if read_only || has("ro") {
            flags |= MsFlags::MS_RDONLY;
        }
        if has("noexec") {
            flags |= MsFlags::MS_NOEXEC;
        }
        super::isolate::mount(None, &point, None, flags, None)?;
    }
    Ok(())
}

/// The mount points (with their per-mount options) of `mountinfo` at or
/// under `target`, in the order listed (parents before their children).
fn mounts_under(mountinfo: &str, target: &Path) -> Vec<(PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options ...
            let mut fields = line.split(' ');
            let point = unescape(fields.nth(4)?);
            let options = fields.next()?.to_string();
            point.starts_with(target).then_some((point, options))
        })
        .collect()
}

/// A mountinfo path, whose space, tab, newline and backslash the kernel
/// writes as octal escapes (`\040`).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 8:2 / /usr rw,nosuid shared:2 - ext4 /dev/sda2 rw
31 30 0:40 / /usr/local ro,noexec - tmpfs tmpfs rw
32 22 0:41 / /usr2 rw - tmpfs tmpfs rw
33 30 0:42 / /usr/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn the_mounts_under_a_target_are_listed_parents_first() {
        let found = mounts_under(MOUNTINFO, Path::new("/usr"));
        let points: Vec<&Path> = found.iter().map(|(point, _)| point.as_path()).collect();
        assert_eq!(
            points,
            [
                Path::new("/usr"),
                Path::new("/usr/local"),
                Path::new("/usr/with space")
            ]
        );
        assert_eq!(found[1].1, "ro,noexec");
        assert_eq!(unescape("a\\134b\\011"), Path::new("a\\b\t"));
        assert_eq!(unescape("trailing\\"), Path::new("trailing\\"));
    }

    /// The fallback, in a mount namespace of this test's thread alone:
    /// a submount of a recursive bind ends up read-only with the bind.
    #[test]
    fn remounting_each_mount_reaches_submounts() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("source"), dir.path().join("target"));
        let result = std::thread::spawn(move || {
            use nix::sched::{unshare, CloneFlags};
            // A sandbox that forbids namespaces: nothing to check here.
            if unshare(CloneFlags::CLONE_NEWNS).is_err() {
                return Ok(None);
            }
            // Nothing below may reach the test's namespace.
            let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
            super::super::isolate::mount(None, Path::new("/"), None, private, None)?;
            std::fs::create_dir_all(source.join("sub")).map_err(|error| error.to_string())?;
            std::fs::create_dir(&target).map_err(|error| error.to_string())?;
            let tmpfs = |at: &Path| {
                super::super::isolate::mount(None, at, Some("tmpfs"), MsFlags::empty(), None)
            };
            tmpfs(&source)?;
            std::fs::create_dir(source.join("sub")).map_err(|error| error.to_string())?;
            tmpfs(&source.join("sub"))?;
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            super::super::isolate::mount(Some(&source), &target, None, bind, None)?;
            remount_each(&target, true)?;
            let writes = |path: &Path| std::fs::write(path, "x").is_ok();
            let outcome = (
                writes(&target.join("top")),
                writes(&target.join("sub/deep")),
                // The source itself stays writable.
                writes(&source.join("sub/deep")),
            );
            for point in [&target, &source] {
                let _ = nix::mount::umount2(point.as_path(), nix::mount::MntFlags::MNT_DETACH);
            }
            Ok::<_, String>(Some(outcome))
        })
        .join()
        .unwrap();
        match result.unwrap() {
            Some(outcome) => assert_eq!(outcome, (false, false, true)),
            None => eprintln!("skipping: no mount namespace here"),
        }
    }
}
