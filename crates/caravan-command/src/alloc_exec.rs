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
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::error::{CommandError, CommandResult};
use crate::flags::FlagSet;
use crate::prefix::{pick, uuid_prefix};

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
    let tty = match parsed.get("t") {
        Some(_) => parsed.bool("t"),
        None => stdin_is_terminal && interactive,
    };
    if tty && !stdin_is_terminal {
        return Err(CommandError::failed(
            "-t was given but the input is not a terminal",
        ));
    }
    let escape = match parsed.get("e").unwrap_or("~") {
        "none" => None,
        text if text.chars().count() == 1 => text.bytes().next(),
        _ => return Err(flags.usage_error("-e must be a single character or \"none\"")),
    };
    let client = parsed.client()?;
    let (alloc, task) = crate::block_on(async {
        let alloc = resolve(&client, &parsed.args[0], parsed.bool("job")).await?;
        let task = choose_task(&alloc, parsed.get("task"))?;
        Ok::<_, CommandError>((alloc, task))
    })?;
    let alloc_id = alloc["ID"].as_str().unwrap_or_default().to_string();
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

/// The allocation `ident` names (a prefix), or with `-job` a running
/// allocation of that job.
async fn resolve(
    client: &caravan_sdk::Client,
    ident: &str,
    job: bool,
) -> Result<Value, CommandError> {
    let options = caravan_sdk::QueryOptions::default();
    let stub = if job {
        let (allocs, _): (Vec<Value>, _) = client
            .get(
                &format!("/v1/job/{}/allocations", caravan_sdk::jobs::escape(ident)),
                &[],
                &options,
            )
            .await
            .map_err(|error| CommandError::call("querying allocations", error))?;
        allocs
            .into_iter()
            .find(|alloc| alloc["ClientStatus"] == "running")
            .ok_or_else(|| {
                CommandError::failed(format!("job {ident:?} has no running allocations"))
            })?
    } else {
        let options = caravan_sdk::QueryOptions {
            prefix: Some(uuid_prefix(ident)?),
            ..Default::default()
        };
        let (allocs, _): (Vec<Value>, _) = client
            .get("/v1/allocations", &[], &options)
            .await
            .map_err(|error| CommandError::call("querying allocations", error))?;
        pick(
            allocs,
            ident,
            "allocation",
            "allocations",
            |alloc| alloc["ID"].as_str().unwrap_or_default(),
            |matches| {
                let rows = matches
                    .iter()
                    .map(|alloc| {
                        vec![
                            crate::ui::cell(&alloc["ID"]),
                            crate::ui::cell(&alloc["JobID"]),
                            crate::ui::cell(&alloc["TaskGroup"]),
                            crate::ui::cell(&alloc["ClientStatus"]),
                        ]
                    })
                    .collect();
                crate::ui::table(&["ID", "Job ID", "Task Group", "Status"], rows)
            },
        )?
    };
    let id = stub["ID"].as_str().unwrap_or_default();
    let (alloc, _): (Value, _) = client
        .get(&format!("/v1/allocation/{id}"), &[], &options)
        .await
        .map_err(|error| CommandError::call("querying allocation", error))?;
    if alloc["ClientStatus"] != "running" {
        return Err(CommandError::failed(format!(
            "Allocation {:?} is not running (status {:?})",
            crate::ui::limit(id, 8),
            crate::ui::cell(&alloc["ClientStatus"])
        )));
    }
    Ok(alloc)
}

/// The task named by `-task`, or the allocation's only task.
fn choose_task(alloc: &Value, asked: Option<&str>) -> Result<String, CommandError> {
    let group = alloc["TaskGroup"].as_str().unwrap_or_default();
    let tasks: Vec<String> = alloc["Job"]["TaskGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|candidate| candidate["Name"] == group)
        .flat_map(|candidate| candidate["Tasks"].as_array().cloned().unwrap_or_default())
        .filter_map(|task| task["Name"].as_str().map(str::to_string))
        .collect();
    match asked {
        Some(task) if tasks.iter().any(|name| name == task) => Ok(task.to_string()),
        Some(task) => Err(CommandError::failed(format!(
            "Could not find task named: {task}, found:\n  * {}",
            tasks.join("\n  * ")
        ))),
        None if tasks.len() == 1 => Ok(tasks[0].clone()),
        None => Err(CommandError::failed(format!(
            "Please specify the task. Allocation has several:\n  * {}",
            tasks.join("\n  * ")
        ))),
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
    let base = match config.address.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", _)) => {
            return Err(CommandError::failed(
                "alloc exec over https is not supported by this CLI yet; use the node's plain HTTP address",
            ))
        }
        _ => format!("ws://{}", config.address),
    };
    let url = format!(
        "{base}/v1/client/allocation/{alloc_id}/exec?task={}&tty={tty}&command={}",
        caravan_sdk::jobs::escape(task),
        caravan_sdk::jobs::escape(&command_json)
    );
    let mut request = url.as_str().into_client_request().map_err(|error| {
        CommandError::failed(format!("Error building the exec request: {error}"))
    })?;
    if let Some(token) = &config.token {
        if let Ok(value) = token.parse() {
            request.headers_mut().insert("X-Nomad-Token", value);
        }
    }
    let host = base.trim_start_matches("ws://").to_string();
    let stream = TcpStream::connect(&host)
        .map_err(|error| CommandError::failed(format!("Error connecting to {host}: {error}")))?;
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
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|error| CommandError::failed(format!("Error on the exec session: {error}")))?;

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
    socket: &mut tungstenite::WebSocket<TcpStream>,
    inputs: &mpsc::Receiver<Input>,
) -> Result<i64, CommandError> {
    let engine = base64::engine::general_purpose::STANDARD;
    loop {
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
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
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
                let _ = match is_stdout {
                    true => std::io::stdout()
                        .write_all(&bytes)
                        .and_then(|()| std::io::stdout().flush()),
                    false => std::io::stderr().write_all(&bytes),
                };
            }
        }
        if frame["exited"] == json!(true) {
            return Ok(frame["result"]["exit_code"].as_i64().unwrap_or(0));
        }
    }
}

fn send(socket: &mut tungstenite::WebSocket<TcpStream>, frame: &Value) -> Result<(), CommandError> {
    socket
        .send(Message::Text(frame.to_string().into()))
        .map_err(|error| CommandError::failed(format!("Error on the exec session: {error}")))
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

    /// Raw mode until dropped (the terminal is restored even on error).
    pub struct RawMode(Termios);

    impl RawMode {
        pub fn enter() -> Result<Self, CommandError> {
            let stdin = std::io::stdin();
            let saved = termios::tcgetattr(&stdin).map_err(|error| {
                CommandError::failed(format!("Error reading the terminal: {error}"))
            })?;
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
    use super::*;

    #[test]
    fn the_only_task_is_chosen_and_several_need_a_name() {
        let alloc = json!({"TaskGroup": "g", "Job": {"TaskGroups": [
            {"Name": "g", "Tasks": [{"Name": "a"}, {"Name": "b"}]},
            {"Name": "h", "Tasks": [{"Name": "c"}]}]}});
        assert_eq!(choose_task(&alloc, Some("b")).unwrap(), "b");
        assert!(choose_task(&alloc, None)
            .unwrap_err()
            .to_string()
            .contains("Please specify the task"));
        assert!(choose_task(&alloc, Some("c")).is_err());
        let single = json!({"TaskGroup": "h", "Job": alloc["Job"].clone()});
        assert_eq!(choose_task(&single, None).unwrap(), "c");
    }

    #[test]
    fn commands_are_url_encoded() {
        assert_eq!(
            caravan_sdk::jobs::escape("[\"sh\",\"-c\"]"),
            "%5B%22sh%22%2C%22-c%22%5D"
        );
    }
}
