//! Running a command as a task's own process runs (raw_exec and exec's
//! `alloc exec`).
//!
//! The task's process is held by a descriptor of its `/proc/<pid>`
//! directory, opened once and checked against the start time the driver
//! recorded: every later read (environment, user, namespaces) goes
//! through it, so a pid reused meanwhile can never lend another process's
//! environment or namespaces (a reused pid has a new `/proc` entry; the
//! old descriptor then reads nothing).
//!
//! For exec, nothing of the task's choosing runs with the client's
//! privileges: the forked child joins the task's cgroups (failing closed),
//! its IPC, UTS, PID and mount namespaces, then forks once more so the
//! command is numbered in the task's PID namespace; that grandchild drops
//! every group, takes the task's uid and gid, sets no-new-privileges and
//! only then execs, with the task's environment applied by that exec
//! alone. The intermediate process waits for it and exits with its
//! status; if it is killed, the grandchild is too (parent-death signal).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::{spawn_session, ExecRequest, ExecSession};
use crate::DriverError;

/// How a command joins a task.
pub(crate) enum Join<'a> {
    /// raw_exec: the task's environment, directory and user, on the host.
    Host,
    /// exec: also the task's namespaces and its cgroups (the
    /// `cgroup.procs` files given).
    Isolated { cgroup_procs: &'a [PathBuf] },
}

/// A task's process, held by its `/proc` directory.
struct TaskProcess {
    dir: OwnedFd,
}

impl TaskProcess {
    /// `pid`, if it is still the process that started at `start_time`.
    fn open(pid: i32, start_time: u64) -> Result<Self, DriverError> {
        let dir = nix::fcntl::open(
            format!("/proc/{pid}").as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| DriverError::NotFound)?;
        let process = Self { dir };
        let stat = String::from_utf8_lossy(&process.read("stat")?).into_owned();
        match crate::proc::parse_stat(&stat) {
            Some(stat) if stat.start_time == start_time && !stat.exited() => Ok(process),
            _ => Err(DriverError::NotFound),
        }
    }

    fn open_entry(&self, name: &str, flags: OFlag) -> Result<OwnedFd, DriverError> {
        openat(&self.dir, name, flags | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|_| DriverError::NotFound)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, DriverError> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::from(self.open_entry(name, OFlag::O_RDONLY)?)
            .read_to_end(&mut bytes)
            .map_err(|_| DriverError::NotFound)?;
        Ok(bytes)
    }

    fn env(&self) -> Result<BTreeMap<String, String>, DriverError> {
        Ok(self
            .read("environ")?
            .split(|byte| *byte == 0)
            .filter_map(|pair| {
                let text = String::from_utf8_lossy(pair);
                let (key, value) = text.split_once('=')?;
                Some((key.to_string(), value.to_string()))
            })
            .collect())
    }

    /// The real uid and gid (`Uid:` and `Gid:` list real, effective,
    /// saved and fs ids).
    fn ids(&self) -> Result<(u32, u32), DriverError> {
        let status = String::from_utf8_lossy(&self.read("status")?).into_owned();
        let id = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u32>().ok())
                .ok_or(DriverError::NotFound)
        };
        Ok((id("Uid:")?, id("Gid:")?))
    }

    fn cwd(&self) -> Result<PathBuf, DriverError> {
        nix::fcntl::readlinkat(&self.dir, "cwd")
            .map(PathBuf::from)
            .map_err(|_| DriverError::NotFound)
    }
}

/// Runs `request` inside the task whose process is `pid` (started at
/// `start_time`).
pub(crate) fn exec_in_process(
    pid: i32,
    start_time: u64,
    request: &ExecRequest,
    join: Join<'_>,
) -> Result<ExecSession, DriverError> {
    let process = TaskProcess::open(pid, start_time)?;
    let env = process.env()?;
    let (uid, gid) = process.ids()?;
    let (program, args) = request
        .command
        .split_first()
        .ok_or_else(|| DriverError::InvalidConfig("command must not be empty".into()))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).env_clear().envs(&env);
    match join {
        Join::Host => {
            command.current_dir(process.cwd()?).uid(uid).gid(gid);
        }
        Join::Isolated { cgroup_procs } => {
            enter_isolated(&mut command, &process, cgroup_procs, uid, gid)?;
        }
    }
    spawn_session(command, request)
}

/// Prepares `command` to join the task (see the module's documentation).
fn enter_isolated(
    command: &mut tokio::process::Command,
    process: &TaskProcess,
    cgroup_procs: &[PathBuf],
    uid: u32,
    gid: u32,
) -> Result<(), DriverError> {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        DriverError::Start(format!("failed to exec into task: {what}: {error}"))
    };
    // Everything the child needs is opened here, before the fork.
    let cgroups: Vec<OwnedFd> = cgroup_procs
        .iter()
        .map(|path| {
            nix::fcntl::open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|error| failed("cannot join the task's cgroup", &error))
        })
        .collect::<Result<_, _>>()?;
    let namespaces: Vec<(OwnedFd, nix::libc::c_int)> = [
        ("ns/ipc", nix::libc::CLONE_NEWIPC),
        ("ns/uts", nix::libc::CLONE_NEWUTS),
        ("ns/pid", nix::libc::CLONE_NEWPID),
        ("ns/mnt", nix::libc::CLONE_NEWNS),
    ]
    .into_iter()
    .map(|(name, kind)| Ok((process.open_entry(name, OFlag::O_RDONLY)?, kind)))
    .collect::<Result<_, DriverError>>()?;
    let root = CString::new("/").map_err(|error| failed("path", &error))?;
    // SAFETY: the closure runs in the forked child, which has one thread;
    // it calls only async-signal-safe functions (write, setns, chdir,
    // fork, waitpid, _exit, prctl, setgroups, setgid, setuid) on memory
    // prepared before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            for fd in &cgroups {
                // "0": the writing process itself.
                if nix::libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                    return fail();
                }
            }
            for (fd, kind) in &namespaces {
                if nix::libc::setns(fd.as_raw_fd(), *kind) != 0 {
                    return fail();
                }
            }
            if nix::libc::chdir(root.as_ptr()) != 0 {
                return fail();
            }
            // Joining a PID namespace places only children in it.
            match nix::libc::fork() {
                -1 => return fail(),
                0 => {}
                child => {
                    let mut status = 0;
                    while nix::libc::waitpid(child, &mut status, 0) < 0 {
                        if *nix::libc::__errno_location() != nix::libc::EINTR {
                            nix::libc::_exit(127);
                        }
                    }
                    let code = match nix::libc::WIFEXITED(status) {
                        true => nix::libc::WEXITSTATUS(status),
                        false => 128 + nix::libc::WTERMSIG(status),
                    };
                    nix::libc::_exit(code);
                }
            }
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL, 0, 0, 0) != 0
                || nix::libc::setgroups(0, std::ptr::null()) != 0
                || nix::libc::setgid(gid) != 0
                || nix::libc::setuid(uid) != 0
                || nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            {
                return fail();
            }
            Ok(())
        });
    }
    Ok(())
}
