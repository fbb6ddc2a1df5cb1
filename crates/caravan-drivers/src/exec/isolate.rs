//! Building an exec task's isolated world. The executor starts the task
//! as `caravan executor <init plan>` in a new PID namespace, so this
//! "init" is PID 1 there; it joins the task's cgroup, enters new mount,
//! IPC and UTS namespaces, builds the root in the task directory from
//! bind mounts (read-only for the host's system directories: nothing is
//! copied; none lets a setuid binary or a device node work), pivots into
//! it, drops to the task's user (never root) with `PR_SET_NO_NEW_PRIVS`
//! set, and execs the task, which so stays PID 1. Running as a fresh
//! process rather than between fork and exec lets the setup allocate and
//! report errors in full: the init writes why it failed to a status pipe,
//! which closes empty when the exec succeeds.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use super::cgroup::TaskCgroup;
use super::mount_attr::lock_down_tree;

/// The host's system directories a task sees, read-only, when present.
pub const SYSTEM_PATHS: &[&str] = &[
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/usr",
    "/etc",
    "/run/resolvconf",
    "/run/systemd/resolve",
];
/// Host devices bound into the task's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// How the executor isolates a task: the `isolation` section of an
/// exec task's executor spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// The task directory, which becomes the task's `/`.
    pub root: PathBuf,
    pub hostname: String,
    pub cgroup: TaskCgroup,
    /// Mounted in order, after the root is bound onto itself.
    pub binds: Vec<Bind>,
    /// Symbolic links in the root, like the host's `/bin -> usr/bin`.
    pub links: Vec<Link>,
    /// The working directory inside the root.
    pub cwd: String,
}

/// A host path bound at `target` (absolute, inside the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub target: String,
    pub points_to: PathBuf,
}

/// What the init runs; the file the executor hands it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitPlan {
    pub caravan_init: InitTask,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitTask {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub isolation: Isolation,
    /// The write end of the status pipe, inherited from the executor.
    pub status_fd: i32,
}

/// `target` as a path under `root`; `None` when it is not a plain
/// absolute path (no `..`), so it can never leave the root.
pub fn inside(root: &Path, target: &str) -> Option<PathBuf> {
    let path = Path::new(target);
    let mut joined = root.to_path_buf();
    let mut any = false;
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                joined.push(name);
                any = true;
            }
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (path.is_absolute() && any).then_some(joined)
}

/// Creates the mount points and links of `isolation` in the task
/// directory (on the host; the mounts themselves only ever exist in the
/// task's mount namespace). A symbolic link on the way to a mount point
/// is refused: the task may have planted it in an earlier run.
pub fn prepare_root(isolation: &Isolation) -> Result<(), String> {
    let root = &isolation.root;
    for link in &isolation.links {
        let path = inside(root, &link.target)
            .ok_or_else(|| format!("invalid link target {:?}", link.target))?;
        match std::fs::read_link(&path) {
            Ok(existing) if existing == link.points_to => continue,
            Ok(_) => remove(&path)?,
            // An empty directory (an earlier layout) gives way; anything
            // else makes symlink() fail below.
            Err(_) => {
                let _ = std::fs::remove_dir(&path);
            }
        }
        std::os::unix::fs::symlink(&link.points_to, &path)
            .map_err(|error| format!("cannot link {}: {error}", path.display()))?;
    }
    let mut points: Vec<(String, bool)> = isolation
        .binds
        .iter()
        .map(|bind| (bind.target.clone(), !bind.source.is_dir()))
        .collect();
    points.extend(["/proc", "/dev", "/tmp"].map(|dir| (dir.to_string(), false)));
    for (target, file) in points {
        mount_point(root, &target, file)?;
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), String> {
    std::fs::remove_file(path)
        .map_err(|error| format!("cannot replace {}: {error}", path.display()))
}

/// Creates `target` under `root` (a directory, or an empty file to bind
/// a file on), refusing symbolic links on the way.
fn mount_point(root: &Path, target: &str, file: bool) -> Result<(), String> {
    let path = inside(root, target).ok_or_else(|| format!("invalid mount path {target:?}"))?;
    let relative = path.strip_prefix(root).map_err(|error| error.to_string())?;
    let mut current = root.to_path_buf();
    let count = relative.components().count();
    for (index, component) in relative.components().enumerate() {
        current.push(component);
        let last = index + 1 == count;
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "cannot mount at {target}: {} is a symbolic link",
                    current.display()
                ))
            }
            Ok(meta) if meta.is_dir() && !(last && file) => {}
            Ok(meta) if last && file && meta.is_file() => {}
            Ok(_) => {
                return Err(format!(
                    "cannot mount at {target}: {} is in the way",
                    current.display()
                ))
            }
            Err(_) if last && file => {
                std::fs::File::create(&current)
                    .map_err(|error| format!("cannot create {}: {error}", current.display()))?;
            }
            Err(_) => std::fs::create_dir(&current)
                .map_err(|error| format!("cannot create {}: {error}", current.display()))?,
        }
    }
    Ok(())
}

/// Starts the init for `task` in a new PID namespace, with the task's
/// output piped, and waits until it has exec'd the task (or failed to).
pub fn spawn(task: &InitTask, plan_path: &Path) -> Result<Child, String> {
    let executable = std::env::current_exe()
        .map_err(|error| format!("cannot find the caravan binary: {error}"))?;
    // Both ends close on exec; the init's copy is made inheritable below.
    let (mut status_reader, status_writer) =
        std::io::pipe().map_err(|error| format!("cannot create a pipe: {error}"))?;
    let status_fd = status_writer.as_raw_fd();
    let plan = InitPlan {
        caravan_init: InitTask {
            status_fd,
            ..task.clone()
        },
    };
    let bytes = serde_json::to_vec(&plan).map_err(|error| error.to_string())?;
    caravan_files::write_private_atomic(plan_path, &bytes)
        .map_err(|error| format!("cannot write {}: {error}", plan_path.display()))?;

    let mut command = Command::new(executable);
    command
        .arg("executor")
        .arg(plan_path)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // As raw_exec's task does: the group reaches all it starts.
        .process_group(0);
    // SAFETY: fcntl is async-signal-safe and touches only the child's fd
    // (open: the parent holds `status_writer` until the spawn is done);
    // nothing here allocates.
    unsafe {
        command.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(status_fd);
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }
    let child = in_new_pid_namespace(|| command.spawn())
        .and_then(|spawned| spawned.map_err(|error| format!("cannot run the init: {error}")));
    drop(status_writer);
    let mut child = child?;
    let mut said = String::new();
    let read = status_reader.read_to_string(&mut said);
    let _ = std::fs::remove_file(plan_path);
    match read {
        Ok(_) if said.is_empty() => Ok(child),
        Ok(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(said)
        }
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("cannot read the init's status: {error}"))
        }
    }
}

/// Runs `spawn` with new children going to a new PID namespace, then
/// puts the executor's own namespace back: threads (the log copiers)
/// cannot be created while the two differ.
fn in_new_pid_namespace<T>(spawn: impl FnOnce() -> T) -> Result<T, String> {
    let own = std::fs::File::open("/proc/self/ns/pid")
        .map_err(|error| format!("cannot open /proc/self/ns/pid: {error}"))?;
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWPID) {
        return Err(format!(
            "cannot create a PID namespace: {}",
            std::io::Error::from(errno)
        ));
    }
    let result = spawn();
    if let Err(errno) = setns(&own, CloneFlags::CLONE_NEWPID) {
        eprintln!(
            "caravan executor: cannot restore the PID namespace: {}",
            std::io::Error::from(errno)
        );
    }
    Ok(result)
}

/// The init: builds the task's world and execs the task. Returns only on
/// failure, after writing why to the status pipe.
pub fn run_init(plan: InitPlan) -> u8 {
    let task = plan.caravan_init;
    // Only an open descriptor is taken over: a plan written by hand (no
    // executor behind it) must not make us own a stranger's fd.
    let open = task.status_fd > 2 && {
        // SAFETY: not -1; fcntl only sets the descriptor's flags, and
        // fails with EBADF on a number that names no open descriptor.
        let fd = unsafe { BorrowedFd::borrow_raw(task.status_fd) };
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).is_ok()
    };
    // SAFETY: the executor passed this fd for us alone; it closes when
    // this process execs the task.
    let mut status = open.then(|| unsafe { std::fs::File::from_raw_fd(task.status_fd) });
    let error = match enter(&task) {
        Ok(mut command) => {
            // Returns only when the exec failed.
            let error = command.exec();
            format!("failed to run {:?}: {error}", task.command)
        }
        Err(error) => error,
    };
    match status.as_mut() {
        Some(status) => {
            let _ = status.write_all(error.as_bytes());
        }
        None => eprintln!("caravan executor: {error}"),
    }
    1
}

/// Everything up to the exec; the command to exec.
fn enter(task: &InitTask) -> Result<Command, String> {
    let isolation = &task.isolation;
    // Looked up in the host's files, before they are out of sight. The
    // driver always names a user other than root (`nobody` by default);
    // this holds for a plan from anywhere else too: root in the host's
    // user namespace could remount the read-only binds, mknod the disk...
    let user = task
        .user
        .as_deref()
        .filter(|user| !user.is_empty())
        .ok_or("an isolated task needs a user to run as")?;
    let (uid, gid, groups) = crate::executor::credentials(user)?
        .filter(|(uid, _, _)| !uid.is_root())
        .ok_or_else(|| format!("refusing to run an isolated task as {user:?}, which is root"))?;
    isolation
        .cgroup
        .join_self()
        .map_err(|error| format!("cannot join the task's cgroup: {error}"))?;
    check(
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS),
        "create mount, IPC and UTS namespaces",
    )?;
    // Nothing mounted from here on may reach the host's namespace.
    mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    nix::unistd::sethostname(&isolation.hostname)
        .map_err(|error| format!("cannot set the hostname: {error}"))?;
    build_root(isolation)?;
    // Nothing the task execs gains privileges: not a setuid binary (nosuid
    // is set on the binds as well), not file capabilities.
    check(
        nix::sys::prctl::set_no_new_privs(),
        "set PR_SET_NO_NEW_PRIVS",
    )?;
    // Leaving uid 0 clears the capabilities too.
    nix::unistd::setgroups(&groups).map_err(|error| format!("setgroups: {error}"))?;
    nix::unistd::setgid(gid).map_err(|error| format!("setgid: {error}"))?;
    nix::unistd::setuid(uid).map_err(|error| format!("setuid: {error}"))?;
    std::env::set_current_dir(&isolation.cwd)
        .map_err(|error| format!("cannot enter {}: {error}", isolation.cwd))?;
    let mut command = Command::new(&task.command);
    command.args(&task.args).env_clear().envs(&task.env);
    Ok(command)
}

/// Mounts the task's root and pivots into it.
fn build_root(isolation: &Isolation) -> Result<(), String> {
    let root = &isolation.root;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    // No setuid binary or device node works anywhere the task can reach;
    // the host's directories (and what is mounted under them) read-only.
    lock_down_tree(root, false)?;
    for bind in &isolation.binds {
        let target = inside(root, &bind.target)
            .ok_or_else(|| format!("invalid mount path {:?}", bind.target))?;
        mount(
            Some(&bind.source),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        lock_down_tree(&target, bind.read_only)?;
    }
    // Our PID namespace's processes only: the init is already in it.
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None, &root.join("proc"), Some("proc"), hardened, None)?;
    build_dev(&root.join("dev"))?;
    // The executor's files (spec, reports) are none of the task's business.
    let state = root.join(crate::raw_exec::STATE_DIR);
    if state.is_dir() {
        mount(
            None,
            &state,
            Some("tmpfs"),
            hardened | MsFlags::MS_RDONLY,
            Some("size=4k,mode=000"),
        )?;
    }
    std::env::set_current_dir(root).map_err(|error| format!("cannot enter the root: {error}"))?;
    // pivot_root(".", ".") stacks the old root on the new one, to be
    // detached just below.
    check(
        nix::unistd::pivot_root(c".", c"."),
        "pivot_root into the task directory",
    )?;
    check(
        nix::mount::umount2(c".", MntFlags::MNT_DETACH),
        "detach the host's root",
    )?;
    std::env::set_current_dir("/").map_err(|error| format!("cannot enter /: {error}"))
}

/// A minimal `/dev`: a tmpfs with the host's harmless devices bound in,
/// the usual links and a `shm`.
fn build_dev(dev: &Path) -> Result<(), String> {
    mount(
        None,
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        std::fs::File::create(&target)
            .map_err(|error| format!("cannot create {}: {error}", target.display()))?;
        mount(Some(&host), &target, None, MsFlags::MS_BIND, None)?;
    }
    for (name, points_to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(points_to, dev.join(name))
            .map_err(|error| format!("cannot link /dev/{name}: {error}"))?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(|error| format!("cannot create /dev/shm: {error}"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(None, &shm, Some("tmpfs"), flags, Some("mode=1777,size=64m"))
}

pub(super) fn mount(
    source: Option<&Path>,
    target: &Path,
    fs_type: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    let source_c = source.map(c_path).transpose()?;
    let target_c = c_path(target)?;
    // A filesystem type doubles as the source name (`proc`, `tmpfs`).
    let fs_type_c = fs_type.map(c_str).transpose()?;
    let data_c = data.map(c_str).transpose()?;
    let name = source_c.as_deref().or(fs_type_c.as_deref());
    let result = nix::mount::mount(
        name,
        target_c.as_c_str(),
        fs_type_c.as_deref(),
        flags,
        data_c.as_deref(),
    );
    check(result, &format!("mount {}", target.display()))
}

fn check(result: nix::Result<()>, what: &str) -> Result<(), String> {
    result.map_err(|errno| format!("cannot {what}: {}", std::io::Error::from(errno)))
}

pub(super) fn c_path(path: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("invalid path {path:?}"))
}

fn c_str(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("invalid mount argument {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/r");
        assert_eq!(inside(root, "/usr/bin"), Some("/r/usr/bin".into()));
        assert_eq!(inside(root, "/a/./b"), Some("/r/a/b".into()));
        assert_eq!(inside(root, "/a/../../etc"), None);
        assert_eq!(inside(root, "relative"), None);
        assert_eq!(inside(root, "/"), None);
    }

    #[test]
    fn mount_points_refuse_symbolic_links() {
        let root = tempfile::tempdir().unwrap();
        mount_point(root.path(), "/data/vol", false).unwrap();
        assert!(root.path().join("data/vol").is_dir());
        mount_point(root.path(), "/etc/file.conf", true).unwrap();
        assert!(root.path().join("etc/file.conf").is_file());
        std::os::unix::fs::symlink("/root", root.path().join("escape")).unwrap();
        let error = mount_point(root.path(), "/escape/x", false).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
