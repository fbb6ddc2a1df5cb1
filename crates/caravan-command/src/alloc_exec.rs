//! `caravan alloc exec [-task T] [-i] [-t] [-e ~] ALLOC COMMAND [ARGS...]`:
//! a command run inside a running task, over the agent's
//! `/v1/client/allocation/:id/exec` websocket with Nomad's frames (stdin
//! data and close, terminal sizes; stdout, stderr, the exit), as `nomad
//! alloc exec`. The CLI exits with the command's exit code.
//!
//! One thread owns the socket (tungstenite is synchronous): it sends what
//! the input thread queued and reads with a short timeout in between, so
//! neither direction waits on the other.

use std::io::{IsTerminal, Read, Write};
use std::sync::mpsc;

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::alloc;

mod transport;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use transport::Transport;

const USAGE: &str = "Usage: caravan alloc exec [options] <allocation> <command> [<args>...]

  Run a command inside a running task of an allocation, as `nomad alloc exec`.
  The command's output is printed as it comes and its exit code is this
  command's.

Exec Options:

  -task <task-name>
    The task to run the command in (needed when the allocation has several).

  -job
    Treat the first argument as a job ID and pick one of its running
    allocations.

  -i
    Pass this terminal's input to the command. Default = true

  -t
    Allocate a pseudo-terminal. Default = true when the input is a terminal.

  -e <escape_char>
    The escape character that, after a newline, with '.' closes the session
    (only with -t). \"none\" disables it. Default = ~
";

fn flags() -> FlagSet {
    FlagSet::new("alloc exec", USAGE)
        .value("task")
        .bool("job")
        .bool("i")
        .bool("t")
        .value("e")
}

pub fn run(args: &[String]) -> CommandResult {
    let flags = flags();
    let parsed = flags.parse(args)?;
    if parsed.args.len() < 2 {
        return Err(
            flags.usage_error("This command takes at least two arguments: <allocation> <command>")
        );
    }
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let interactive = parsed.get("i").is_none() || parsed.bool("i");
    // As Nomad: a terminal only when both ends are one, so `alloc exec id
    // cat file > copy` copies bytes, not a terminal's translation of them.
    let tty = match parsed.get("t") {
        Some(_) => parsed.bool("t"),
        None => stdin_is_terminal && std::io::stdout().is_terminal() && interactive,
    };
    if tty && !interactive {
        return Err(flags.usage_error("-i must be enabled if running with tty"));
    }
    if tty && !stdin_is_terminal {
        return Err(CommandError::failed(
            "-t was given but the input is not a terminal",
        ));
    }
    let escape = match parsed.get("e").unwrap_or("~") {
        "none" => None,
        text if text.len() == 1 && text.is_ascii() => text.bytes().next(),
        _ => return Err(flags.usage_error("-e must be a single ASCII character or \"none\"")),
    };
    let client = parsed.client()?;
    let (alloc_id, task) = crate::block_on(async {
        let ident = match parsed.bool("job") {
            true => alloc::job_alloc_id(&client, &parsed.args[0], None).await?,
            false => parsed.args[0].clone(),
        };
        let alloc = alloc::resolve(&client, &ident, alloc::ShortId::AllocId, false).await?;
        if alloc.client_status != "running" {
            return Err(CommandError::failed(format!(
                "Allocation {:?} is not running (status {:?})",
                crate::ui::limit(&alloc.id, crate::ui::SHORT_ID),
                alloc.client_status
            )));
        }
        let task = match parsed.get("task") {
            Some(task) => {
                alloc::check_task(&alloc, task)?;
                task.to_string()
            }
            None => alloc::only_task(&alloc)?,
        };
        Ok::<_, CommandError>((alloc.id, task))
    })?;
    let command: Vec<&str> = parsed.args[1..].iter().map(String::as_str).collect();
    let code = session(
        client.config(),
        &alloc_id,
        &task,
        &command,
        interactive,
        tty,
        escape,
    )?;
    match code {
        0 => Ok(()),
        code => Err(CommandError::Exit(u8::try_from(code).unwrap_or(1))),
    }
}

/// Where the session's websocket goes: the agent's `host:port` and any
/// path the address has before `/v1/`.
struct ExecTarget {
    authority: String,
    path_prefix: String,
    tls: bool,
}

impl ExecTarget {
    fn of(config: &caravan_sdk::Config) -> Result<Self, CommandError> {
        let (tls, rest) = match config.address.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some((_, rest)) => (false, rest),
            None => (false, config.address.as_str()),
        };
        let (authority, path_prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], rest[slash..].trim_end_matches('/')),
            None => (rest, ""),
        };
        // A port-less address (a proxy at `https://nomad.example`) has the
        // scheme's port, as every other command's HTTP client assumes.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
        let authority = match has_port {
            true => authority.to_string(),
            false => format!("{authority}:{}", if tls { 443 } else { 80 }),
        };
        Ok(Self {
            authority,
            path_prefix: path_prefix.to_string(),
            tls,
        })
    }
}

/// What the input thread hands the socket's thread.
enum Input {
    Data(Vec<u8>),
    Close,
    /// The escape sequence: end the session.
    Detach,
}

/// Runs the session; the command's exit code.
fn session(
    config: &caravan_sdk::Config,
    alloc_id: &str,
    task: &str,
    command: &[&str],
    interactive: bool,
    tty: bool,
    escape: Option<u8>,
) -> Result<i64, CommandError> {
    let command_json = serde_json::to_string(command).unwrap_or_default();
    let target = ExecTarget::of(config)?;
    let mut url = format!(
        "{}://{}{}/v1/client/allocation/{alloc_id}/exec?task={}&tty={tty}&command={}",
        if target.tls { "wss" } else { "ws" },
        target.authority,
        target.path_prefix,
        caravan_sdk::jobs::escape(task),
        caravan_sdk::jobs::escape(&command_json)
    );
    // The region and namespace every other command sends.
    for (name, value) in [("region", &config.region), ("namespace", &config.namespace)] {
        if let Some(value) = value {
            url.push_str(&format!("&{name}={}", caravan_sdk::jobs::escape(value)));
        }
    }
    let mut request = url.as_str().into_client_request().map_err(|error| {
        CommandError::failed(format!("Error building the exec request: {error}"))
    })?;
    let header = |text: &str, what: &str| {
        text.parse().map_err(|_| {
            CommandError::failed(format!("Error: the {what} is not a valid header value"))
        })
    };
    if let Some(token) = &config.token {
        request
            .headers_mut()
            .insert("X-Nomad-Token", header(token, "token")?);
    }
    if let Some((user, password)) = &config.http_auth {
        let credentials = format!("{user}:{}", password.as_deref().unwrap_or_default());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        request
            .headers_mut()
            .insert("Authorization", header(&basic, "HTTP auth")?);
    }
    let stream = Transport::connect(config, &target.authority, target.tls)?;
    let (mut socket, _) = tungstenite::client(request, stream).map_err(|error| match error {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)) => {
            CommandError::failed(format!(
                "Unexpected response code: {} ({})",
                response.status().as_u16(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).trim()
            ))
        }
        other => CommandError::failed(format!("Error starting the exec session: {other}")),
    })?;
    // Only now: a handshake must not be cut short by the short turns.
    socket.get_ref().take_turns()?;
    let raw = match tty {
        true => Some(terminal::RawMode::enter()?),
        false => None,
    };
    let (sender, inputs) = mpsc::channel();
    if interactive {
        std::thread::spawn(move || read_input(sender, tty.then_some(escape).flatten()));
    } else {
        let _ = sender.send(Input::Close);
    }
    if tty {
        send(&mut socket, &json!({"tty_size": terminal::size()}))?;
    }
    let result = relay(&mut socket, &inputs);
    drop(raw);
    result
}

/// Moves input to the socket and frames to stdout/stderr until the exit.
fn relay(
    socket: &mut tungstenite::WebSocket<Transport>,
    inputs: &mpsc::Receiver<Input>,
) -> Result<i64, CommandError> {
    let engine = base64::engine::general_purpose::STANDARD;
    loop {
        // A resized window resizes the command's terminal (vim, top).
        if terminal::RESIZED.swap(false, std::sync::atomic::Ordering::Relaxed) {
            send(socket, &json!({"tty_size": terminal::size()}))?;
        }
        while let Ok(input) = inputs.try_recv() {
            match input {
                Input::Data(bytes) => {
                    send(socket, &json!({"stdin": {"data": engine.encode(bytes)}}))?
                }
                Input::Close => send(socket, &json!({"stdin": {"close": true}}))?,
                Input::Detach => return Ok(0),
            }
        }
        let message = match socket.read() {
            Ok(message) => message,
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    // A signal (a resize) interrupts a read with a timeout
                    // even under SA_RESTART: the read is simply taken again.
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Err(CommandError::failed(
                    "The exec session closed before the command exited",
                ))
            }
            Err(error) => {
                return Err(CommandError::failed(format!(
                    "Error on the exec session: {error}"
                )))
            }
        };
        let text = match message {
            Message::Text(text) => text.to_string(),
            // The agent says why a command could not start.
            Message::Close(Some(frame)) if !frame.reason.is_empty() => {
                return Err(CommandError::failed(format!(
                    "Error starting the exec session: {}",
                    frame.reason
                )))
            }
            Message::Close(_) => {
                return Err(CommandError::failed(
                    "The exec session closed before the command exited",
                ))
            }
            _ => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for (stream, is_stdout) in [("stdout", true), ("stderr", false)] {
            if let Some(data) = frame[stream]["data"].as_str() {
                let bytes = engine.decode(data).unwrap_or_default();
                let written = match is_stdout {
                    true => std::io::stdout()
                        .write_all(&bytes)
                        .and_then(|()| std::io::stdout().flush()),
                    false => std::io::stderr().write_all(&bytes),
                };
                match written {
                    Ok(()) => {}
                    // The reader went away (`| head`): the session ends as
                    // a SIGPIPE would end it, the terminal restored.
                    Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(141),
                    Err(error) => {
                        return Err(CommandError::failed(format!(
                            "Error writing the output: {error}"
                        )))
                    }
                }
            }
        }
        if frame["exited"] == json!(true) {
            return Ok(frame["result"]["exit_code"].as_i64().unwrap_or(0));
        }
    }
}

fn send(socket: &mut tungstenite::WebSocket<Transport>, frame: &Value) -> Result<(), CommandError> {
    let failed = |error| CommandError::failed(format!("Error on the exec session: {error}"));
    let mut sent = socket.send(Message::Text(frame.to_string().into()));
    // The frame is queued once `send` got as far as writing; an interrupted
    // or timed-out write is finished by flushing again.
    while let Err(tungstenite::Error::Io(error)) = &sent {
        if !matches!(
            error.kind(),
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
        ) {
            break;
        }
        sent = socket.flush();
    }
    sent.map_err(failed)
}

/// Reads this process's input into frames; with a terminal, `escape`
/// then `.` after a newline ends the session (ssh's habit, Nomad's too).
fn read_input(sender: mpsc::Sender<Input>, escape: Option<u8>) {
    let mut stdin = std::io::stdin();
    let mut buffer = [0u8; 4096];
    let mut at_line_start = true;
    let mut escaped = false;
    loop {
        let count = match stdin.read(&mut buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => {
                let _ = sender.send(Input::Close);
                return;
            }
            Ok(count) => count,
        };
        let mut out = Vec::with_capacity(count);
        for &byte in &buffer[..count] {
            if escaped {
                escaped = false;
                if byte == b'.' {
                    let _ = sender.send(Input::Detach);
                    return;
                }
                if Some(byte) != escape {
                    out.extend(escape);
                }
            } else if at_line_start && Some(byte) == escape {
                escaped = true;
                continue;
            }
            at_line_start = matches!(byte, b'\r' | b'\n');
            out.push(byte);
        }
        if !out.is_empty() && sender.send(Input::Data(out)).is_err() {
            return;
        }
    }
}

/// This terminal in raw mode for the session, and its size.
mod terminal {
    use nix::sys::termios::{self, SetArg, Termios};
    use serde_json::{json, Value};

    use crate::error::CommandError;

    /// Set when the terminal was resized (SIGWINCH); the session's thread
    /// sends the new size at its next turn.
    pub static RESIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    extern "C" fn note_resize(_signal: nix::libc::c_int) {
        RESIZED.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The terminal as it was before the session, for a signal handler.
    static SAVED: std::sync::OnceLock<nix::libc::termios> = std::sync::OnceLock::new();

    /// SIGTERM, SIGHUP, SIGQUIT or SIGINT while the terminal is raw: restore it,
    /// then die of the signal as if it had not been caught.
    extern "C" fn restore_and_die(signal: nix::libc::c_int) {
        // SAFETY: tcsetattr, signal and raise are async-signal-safe; SAVED
        // is set before the handler is installed and never changes.
        unsafe {
            if let Some(saved) = SAVED.get() {
                nix::libc::tcsetattr(0, nix::libc::TCSANOW, saved);
            }
            nix::libc::signal(signal, nix::libc::SIG_DFL);
            nix::libc::raise(signal);
        }
    }

    /// Raw mode until dropped (the terminal is restored on every return,
    /// on a panic, and when a signal ends the process).
    pub struct RawMode(Termios);

    impl RawMode {
        pub fn enter() -> Result<Self, CommandError> {
            use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
            let stdin = std::io::stdin();
            let saved = termios::tcgetattr(&stdin).map_err(|error| {
                CommandError::failed(format!("Error reading the terminal: {error}"))
            })?;
            let _ = SAVED.set(saved.clone().into());
            let handler = SigAction::new(
                SigHandler::Handler(restore_and_die),
                SaFlags::empty(),
                SigSet::empty(),
            );
            for signal in [
                Signal::SIGTERM,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGINT,
            ] {
                // SAFETY: the handler only calls async-signal-safe functions.
                let _ = unsafe { sigaction(signal, &handler) };
            }
            let resize = SigAction::new(
                SigHandler::Handler(note_resize),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            // SAFETY: the handler only stores to an atomic.
            let _ = unsafe { sigaction(Signal::SIGWINCH, &resize) };
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(|error| {
                CommandError::failed(format!("Error setting the terminal: {error}"))
            })?;
            Ok(Self(saved))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
        }
    }

    /// The terminal's size as Nomad's `tty_size` frame carries it.
    pub fn size() -> Value {
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into `size`, which lives
        // for the call; stdout is this process's descriptor 1.
        let ok = unsafe { nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut size) } == 0;
        match ok && size.ws_row > 0 {
            true => json!({"height": size.ws_row, "width": size.ws_col}),
            false => json!({"height": 24, "width": 80}),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_url_encoded() {
        assert_eq!(
            caravan_sdk::jobs::escape("[\"sh\",\"-c\"]"),
            "%5B%22sh%22%2C%22-c%22%5D"
        );
    }
}
