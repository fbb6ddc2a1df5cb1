//! A command run inside a running task (`nomad alloc exec`): what is asked
//! ([`ExecRequest`]) and the running command's input, output and exit
//! ([`ExecSession`]), the same for every driver.
//!
//! For raw_exec and exec the command joins the task as the task's own
//! process sees it (its environment, working directory and user, read
//! from `/proc/<pid>`; for exec also its namespaces and cgroup), so it
//! sees what the task sees; docker uses the engine's own exec.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::AsyncWrite;
use tokio_util::io::ReaderStream;

use crate::DriverError;

/// What `nomad alloc exec` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments; not empty.
    pub command: Vec<String>,
    /// Whether the command runs on a terminal (then its output is all on
    /// stdout, as a terminal's is).
    pub tty: bool,
}

/// A piece of the command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Changes the terminal's size (`tty_size` frames): width, height.
pub type Resize = Box<dyn Fn(u16, u16) -> BoxFuture<'static, ()> + Send + Sync>;

/// A command running inside a task.
pub struct ExecSession {
    /// Its standard input; dropping it closes the input.
    pub input: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
    /// Its output, ending when the command's output ends.
    pub output: BoxStream<'static, Result<ExecOutput, DriverError>>,
    /// Its exit code, once it has exited (after its output ended).
    pub exit: BoxFuture<'static, Result<i32, DriverError>>,
    /// Set on a terminal.
    pub resize: Option<Resize>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExecSession")
            .finish_non_exhaustive()
    }
}

/// How a process of the task runs, read from `/proc/<pid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessContext {
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// The environment, working directory and user of `pid`.
pub(crate) fn process_context(pid: i32) -> Result<ProcessContext, DriverError> {
    let gone = |_| DriverError::NotFound;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).map_err(gone)?;
    let env = environ
        .split(|byte| *byte == 0)
        .filter_map(|pair| {
            let text = String::from_utf8_lossy(pair);
            let (key, value) = text.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).map_err(gone)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(gone)?;
    // `Uid:` and `Gid:` list real, effective, saved and fs ids.
    let id = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|value| value.parse::<u32>().ok())
            .ok_or(DriverError::NotFound)
    };
    Ok(ProcessContext {
        env,
        cwd,
        uid: id("Uid:")?,
        gid: id("Gid:")?,
    })
}

/// Runs `command` (already set up: program, environment, user, ...) with
/// piped input and output, as a session.
pub(crate) fn spawn_session(
    mut command: tokio::process::Command,
    tty: bool,
) -> Result<ExecSession, DriverError> {
    if tty {
        return spawn_on_terminal(command);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| DriverError::Start(format!("failed to exec into task: {error}")))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(DriverError::Start(
            "failed to exec into task: no pipes".into(),
        ));
    };
    let stdout = ReaderStream::new(stdout)
        .map(|chunk| chunk.map(|bytes| ExecOutput::Stdout(bytes.to_vec())));
    let stderr = ReaderStream::new(stderr)
        .map(|chunk| chunk.map(|bytes| ExecOutput::Stderr(bytes.to_vec())));
    let output = futures::stream::select(stdout, stderr)
        .map(|item| item.map_err(DriverError::from))
        .boxed();
    let exit = Box::pin(async move {
        let status = child.wait().await?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    });
    Ok(ExecSession {
        input: Box::pin(stdin),
        output,
        exit,
        resize: None,
    })
}

/// How a command joins a task whose process is `pid`.
pub(crate) enum Join<'a> {
    /// raw_exec: the task's environment, directory and user, on the host.
    Host,
    /// exec: also the task's namespaces (through util-linux's `nsenter`,
    /// which forks into the PID namespace) and its cgroups, whose
    /// `cgroup.procs` files are given; never regaining privileges.
    Isolated { cgroup_procs: &'a [PathBuf] },
}

/// Where `nsenter` is looked for.
const NSENTER: &[&str] = &["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"];

/// Runs `request` inside the task whose process is `pid` (started at
/// `start_time`, so a reused pid is not mistaken for it).
pub(crate) fn exec_in_process(
    pid: i32,
    start_time: u64,
    request: &ExecRequest,
    join: Join<'_>,
) -> Result<ExecSession, DriverError> {
    if crate::proc::stat(pid).is_none_or(|stat| stat.start_time != start_time) {
        return Err(DriverError::NotFound);
    }
    let context = process_context(pid)?;
    let (program, args) = request
        .command
        .split_first()
        .ok_or_else(|| DriverError::InvalidConfig("command must not be empty".into()))?;
    let mut command = match join {
        Join::Host => {
            let mut command = tokio::process::Command::new(program);
            command
                .args(args)
                .current_dir(&context.cwd)
                .uid(context.uid)
                .gid(context.gid);
            command
        }
        Join::Isolated { cgroup_procs } => {
            let nsenter = NSENTER
                .iter()
                .find(|path| std::path::Path::new(path).exists())
                .ok_or_else(|| {
                    DriverError::Start(
                        "exec into an exec task needs nsenter (util-linux) on the client".into(),
                    )
                })?;
            let mut command = tokio::process::Command::new(nsenter);
            command
                .args(["--target", &pid.to_string()])
                .args(["--mount", "--uts", "--ipc", "--pid", "--wd"])
                .args(["--setuid", &context.uid.to_string()])
                .args(["--setgid", &context.gid.to_string()])
                .arg("--")
                .arg(program)
                .args(args);
            let procs: Vec<std::ffi::CString> = cgroup_procs
                .iter()
                .filter_map(|path| std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok())
                .collect();
            // SAFETY: after fork, only async-signal-safe calls (open,
            // write, close, prctl) on memory prepared before the fork.
            unsafe {
                command.pre_exec(move || {
                    for path in &procs {
                        let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY);
                        if fd >= 0 {
                            // "0": the writing process itself.
                            nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                            nix::libc::close(fd);
                        }
                    }
                    if nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            command
        }
    };
    command.env_clear().envs(&context.env);
    spawn_session(command, request.tty)
}

/// Runs `command` on a new pseudo-terminal: its output (stdout and
/// stderr alike, as on a terminal) is read from the terminal's master,
/// its input written there, and the terminal resized on request.
fn spawn_on_terminal(mut command: tokio::process::Command) -> Result<ExecSession, DriverError> {
    use std::os::fd::AsRawFd;

    let failed =
        |error: std::io::Error| DriverError::Start(format!("failed to exec into task: {error}"));
    let pty = nix::pty::openpty(None, None).map_err(|errno| failed(errno.into()))?;
    let slave = std::fs::File::from(pty.slave);
    command
        .stdin(Stdio::from(slave.try_clone().map_err(failed)?))
        .stdout(Stdio::from(slave.try_clone().map_err(failed)?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true);
    // SAFETY: after fork, only async-signal-safe calls: a new session
    // whose controlling terminal is the one on stdin.
    unsafe {
        command.pre_exec(|| {
            if nix::libc::setsid() < 0 || nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(failed)?;
    // Our copies of the terminal's other end go, so reading the master
    // ends when the command (and whatever it started) has closed it.
    drop(command);
    let master = std::fs::File::from(pty.master);
    let master_fd = std::sync::Arc::new(master.try_clone().map_err(failed)?);
    let reader = tokio::fs::File::from_std(master.try_clone().map_err(failed)?);
    let writer = tokio::fs::File::from_std(master);
    // A master whose other end is closed reads EIO: the end of output.
    let output = ReaderStream::new(reader)
        .take_while(|chunk| {
            let done = matches!(chunk, Err(error) if error.raw_os_error() == Some(nix::libc::EIO));
            std::future::ready(!done)
        })
        .map(|chunk| {
            chunk
                .map(|bytes| ExecOutput::Stdout(bytes.to_vec()))
                .map_err(DriverError::from)
        })
        .boxed();
    let exit = Box::pin(async move {
        let status = child.wait().await?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    });
    let resize: Resize = Box::new(move |width: u16, height: u16| {
        let size = nix::libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe {
            nix::libc::ioctl(master_fd.as_raw_fd(), nix::libc::TIOCSWINSZ, &size);
        }
        Box::pin(std::future::ready(()))
    });
    Ok(ExecSession {
        input: Box::pin(writer),
        output,
        exit,
        resize: Some(resize),
    })
}
