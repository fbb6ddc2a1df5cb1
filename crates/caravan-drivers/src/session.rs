//! A command run inside a running task (`nomad alloc exec`): what is asked
//! ([`ExecRequest`]) and the running command's input, output and exit
//! ([`ExecSession`]), the same for every driver.
//!
//! For raw_exec and exec the command joins the task as the task's own
//! process runs ([`enter`]: its environment, working directory and user;
//! for exec also its namespaces and cgroup), so it sees what the task
//! sees; docker uses the engine's own exec. The command leads a process
//! group (or a session, on a terminal) that is killed when the session is
//! dropped before the command has exited: a caller that goes away leaves
//! nothing running.

use std::process::Stdio;

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use nix::fcntl::OFlag;
use tokio::io::AsyncWrite;
use tokio_util::io::ReaderStream;

use crate::DriverError;

mod enter;

pub(crate) use enter::{exec_in_process, Join};

/// What `nomad alloc exec` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments; not empty.
    pub command: Vec<String>,
    /// Whether the command runs on a terminal (then its output is all on
    /// stdout, as a terminal's is).
    pub tty: bool,
    /// The terminal's size when the command starts (a program such as
    /// `top` reads it once, before any resize could reach it).
    pub size: Option<TerminalSize>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

impl TerminalSize {
    fn winsize(self) -> nix::libc::winsize {
        nix::libc::winsize {
            ws_row: self.height,
            ws_col: self.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// Sets the size of the terminal whose master is `master`.
fn set_size(master: &impl AsRawFd, size: TerminalSize) {
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe {
        nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size.winsize());
    }
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

/// Kills the command's process group when the session is dropped before
/// the command has been reaped (after, the group's number may be reused).
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            // An intermediate that is not the group's leader (exec's, on a
            // terminal, whose grandchild leads its own session) dies too,
            // and takes the grandchild with it (its parent-death signal).
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The command's exit, which disarms the killer once the command is
/// reaped.
fn exit_of(
    mut child: tokio::process::Child,
    killer: std::sync::Arc<std::sync::Mutex<GroupKiller>>,
) -> futures::future::BoxFuture<'static, Result<i32, DriverError>> {
    Box::pin(async move {
        let status = child.wait().await?;
        crate::lock(&killer).disarm();
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    })
}

/// Runs `command` (already set up: program, environment, user, ...) as a
/// session, on a terminal when `tty`.
pub(crate) fn spawn_session(
    mut command: tokio::process::Command,
    request: &ExecRequest,
) -> Result<ExecSession, DriverError> {
    if request.tty {
        return spawn_on_terminal(command, request.size);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|error| DriverError::Start(format!("failed to exec into task: {error}")))?;
    let killer = std::sync::Arc::new(std::sync::Mutex::new(GroupKiller(
        child.id().and_then(|pid| i32::try_from(pid).ok()),
    )));
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(DriverError::Start(
            "failed to exec into task: no pipes".into(),
        ));
    };
    let held = std::sync::Arc::clone(&killer);
    let stdout = ReaderStream::new(stdout)
        .map(|chunk| chunk.map(|bytes| ExecOutput::Stdout(bytes.to_vec())));
    let stderr = ReaderStream::new(stderr)
        .map(|chunk| chunk.map(|bytes| ExecOutput::Stderr(bytes.to_vec())));
    let output = futures::stream::select(stdout, stderr)
        .map(move |item| {
            // The stream holds the killer too: dropping the session drops it.
            let _ = &held;
            item.map_err(DriverError::from)
        })
        .boxed();
    Ok(ExecSession {
        input: Box::pin(stdin),
        output,
        exit: exit_of(child, killer),
        resize: None,
    })
}

/// A new pseudo-terminal, both ends close-on-exec (so no other process
/// the agent starts inherits either): the master, and the terminal's path.
fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let path = ptsname_r(&master)?;
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(path)?;
    // SAFETY: the master's descriptor is moved out of the PtyMaster,
    // which then no longer owns it.
    let master = unsafe { std::fs::File::from_raw_fd(master.into_raw_fd()) };
    Ok((master, terminal))
}

/// Runs `command` on a new pseudo-terminal: its output (stdout and
/// stderr alike, as on a terminal) is read from the terminal's master,
/// its input written there, and the terminal resized on request.
fn spawn_on_terminal(
    mut command: tokio::process::Command,
    size: Option<TerminalSize>,
) -> Result<ExecSession, DriverError> {
    let failed =
        |error: std::io::Error| DriverError::Start(format!("failed to exec into task: {error}"));
    let (master, terminal) = open_terminal().map_err(failed)?;
    if let Some(size) = size {
        set_size(&master, size);
    }
    command
        .stdin(Stdio::from(terminal.try_clone().map_err(failed)?))
        .stdout(Stdio::from(terminal.try_clone().map_err(failed)?))
        .stderr(Stdio::from(terminal));
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
    let child = command.spawn().map_err(failed)?;
    // Our copies of the terminal's other end go, so reading the master
    // ends (EIO) once the command and what it started have closed it.
    drop(command);
    let killer = std::sync::Arc::new(std::sync::Mutex::new(GroupKiller(
        child.id().and_then(|pid| i32::try_from(pid).ok()),
    )));
    let master_fd = std::sync::Arc::new(master.try_clone().map_err(failed)?);
    let reader = tokio::fs::File::from_std(master.try_clone().map_err(failed)?);
    let writer = tokio::fs::File::from_std(master);
    let held = std::sync::Arc::clone(&killer);
    let output = ReaderStream::new(reader)
        .take_while(|chunk| {
            let done = matches!(chunk, Err(error) if error.raw_os_error() == Some(nix::libc::EIO));
            std::future::ready(!done)
        })
        .map(move |chunk| {
            let _ = &held;
            chunk
                .map(|bytes| ExecOutput::Stdout(bytes.to_vec()))
                .map_err(DriverError::from)
        })
        .boxed();
    let resize: Resize = Box::new(move |width: u16, height: u16| {
        set_size(&*master_fd, TerminalSize { width, height });
        Box::pin(std::future::ready(()))
    });
    Ok(ExecSession {
        input: Box::pin(writer),
        output,
        exit: exit_of(child, killer),
        resize: Some(resize),
    })
}
