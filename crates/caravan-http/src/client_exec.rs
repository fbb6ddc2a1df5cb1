//! `/v1/client/allocation/:id/exec`: a command run inside a running task
//! over a websocket (`nomad alloc exec`), with Nomad's frames: the client
//! sends `{"stdin":{"data":"<base64>"}}`, `{"stdin":{"close":true}}` and
//! `{"tty_size":{"height":H,"width":W}}`; the agent sends
//! `{"stdout":{"data":...}}`, `{"stderr":{"data":...}}`, then
//! `{"exited":true,"result":{"exit_code":N}}` and closes.
//!
//! The command starts once the socket is open; on a terminal, at the size
//! the caller's first frame gives (Nomad starts it at once, so a program
//! that reads its size at start could see 0×0). A command that cannot
//! start then ends the socket with a close frame saying why.
//!
//! Answered by the agent whose client holds the allocation (the Go `api`
//! package, and so the `nomad` CLI, dials the node's own address first);
//! any other agent relays the websocket there byte for byte. The caller
//! needs `alloc-exec` in the allocation's namespace, and `alloc-node-exec`
//! too for a raw_exec task, which is not isolated from the node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use base64::Engine;
use caravan_drivers::{ExecOutput, ExecRequest, ExecSession};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::client_route::{no_path, permitted_holder, relayed, whole_answer, AllocHolder};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

/// The largest frame a caller may send (stdin arrives in small pieces).
const MAX_FRAME: usize = 1024 * 1024;
/// Sessions one agent runs at once: an upgraded connection no longer
/// counts against the HTTP connection limits.
const MAX_SESSIONS: usize = 64;
static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// One running session, counted while it lives.
struct SessionSlot;

impl SessionSlot {
    fn take() -> Option<Self> {
        let taken = SESSIONS.fetch_add(1, Ordering::SeqCst);
        if taken >= MAX_SESSIONS {
            SESSIONS.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Self)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        SESSIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a session may sit with neither input nor output.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

pub fn routes() -> Vec<Route> {
    vec![Route {
        path: "/v1/client/allocation/{id}/exec",
        endpoints: vec![endpoint(GET, Acl::InHandler, Consistency::Local, exec)],
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    }]
}

/// One frame from the caller.
#[derive(Debug, Default, Deserialize)]
struct Input {
    #[serde(default)]
    stdin: Option<IoOperation>,
    #[serde(default)]
    tty_size: Option<TerminalSize>,
}

#[derive(Debug, Default, Deserialize)]
struct IoOperation {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Default, Deserialize)]
struct TerminalSize {
    #[serde(default)]
    height: u16,
    #[serde(default)]
    width: u16,
}

/// `task`, `command` (a JSON list) and `tty` from the query.
fn parse_request(request: &Request) -> Result<(String, ExecRequest), ApiError> {
    let task = request
        .query_value("task")
        .filter(|task| !task.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing task parameter"))?
        .to_string();
    let command = request
        .query_value("command")
        .filter(|command| !command.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing command parameter"))?;
    let command: Vec<String> = serde_json::from_str(command)
        .map_err(|error| ApiError::bad_request(format!("failed to parse command: {error}")))?;
    if command.is_empty() || command[0].is_empty() {
        return Err(ApiError::bad_request("command is not present"));
    }
    let tty = matches!(request.query_value("tty"), Some("true" | "1"));
    let request = ExecRequest {
        command,
        tty,
        // Given by the caller's first frame, once the socket is open.
        size: None,
    };
    Ok((task, request))
}

async fn exec(mut request: Request) -> Result<Reply, ApiError> {
    let (task, exec_request) = parse_request(&request)?;
    let alloc_id = request.param("id").to_string();
    let (view, client) = match permitted_holder(&request, &alloc_id, &["alloc-exec"])? {
        AllocHolder::Local(view, client) => (view, client),
        AllocHolder::Remote(base) => return relay_exec(request, &base).await,
    };
    let manager = client
        .allocations()
        .ok_or_else(|| ApiError::internal("the client is not running allocations yet"))?;
    let lifecycle = crate::client_allocs::lifecycle_error;
    let driver = manager.task_driver(&alloc_id, &task).map_err(lifecycle)?;
    let namespace = &view.alloc.namespace;
    if driver == "raw_exec"
        && !request
            .identity
            .acl
            .allows_namespace(namespace, "alloc-node-exec")
    {
        return Err(ApiError::permission_denied());
    }
    // The upgrade is checked before the command runs, so a plain GET gets
    // a clear error and starts nothing.
    let upgrade = {
        let mut builder = http::Request::builder()
            .method(http::Method::GET)
            .uri(request.path_and_query.as_str());
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers.clone();
        }
        let (mut parts, ()) = builder
            .body(())
            .map_err(|error| ApiError::bad_request(error.to_string()))?
            .into_parts();
        parts.extensions = std::mem::take(&mut request.extensions);
        WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?
    };
    // Checked before the upgrade too, so a task that is not running gets
    // a status rather than a closed websocket.
    manager.check_running(&alloc_id, &task).map_err(lifecycle)?;
    let slot = SessionSlot::take().ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many exec sessions on this agent (at most {MAX_SESSIONS})"),
        )
    })?;
    let manager = std::sync::Arc::clone(manager);
    let response = upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            run_session(socket, &manager, &alloc_id, &task, exec_request).await;
            drop(slot);
        });
    Ok(Reply::handover(response))
}

/// How long a terminal session waits for the caller's first frame (the
/// CLI's is its terminal's size) before the command starts anyway.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(2);

/// Starts the command once the socket is open: on a terminal, of the size
/// the caller's first frame gives (a program reads it at start, before a
/// later resize could reach it), then runs the session.
async fn run_session(
    mut socket: WebSocket,
    manager: &caravan_client::runner::AllocManager,
    alloc_id: &str,
    task: &str,
    mut request: ExecRequest,
) {
    let mut early = None;
    if request.tty {
        let deadline = tokio::time::Instant::now() + FIRST_FRAME_WAIT;
        // The first frame that says something (pings are answered by the
        // socket and skipped); it is handled in full once the command
        // runs (input it carries too), its size applied before.
        while early.is_none() {
            match tokio::time::timeout_at(deadline, socket.recv()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message))) => {
                    if let Some(size) = parse_input(&message).and_then(|input| input.tty_size) {
                        if size.width > 0 && size.height > 0 {
                            request.size = Some(caravan_drivers::TerminalSize {
                                width: size.width,
                                height: size.height,
                            });
                        }
                    }
                    early = Some(message);
                }
            }
        }
    }
    let session = match manager.exec(alloc_id, task, request).await {
        Ok(session) => session,
        Err(error) => {
            let error = crate::client_allocs::lifecycle_error(error);
            let _ = socket.send(close_frame(&error)).await;
            return;
        }
    };
    pump(socket, session, early).await;
}

/// A close frame for a session that could not start, with the reason (a
/// close frame's reason holds at most 123 bytes) and Nomad's code: 1011
/// for a server error, 1008 (policy) for a refusal.
fn close_frame(error: &ApiError) -> Message {
    let reason = error.message.as_str();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let code = match error.status {
        StatusCode::INTERNAL_SERVER_ERROR => axum::extract::ws::close_code::ERROR,
        _ => axum::extract::ws::close_code::POLICY,
    };
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    }))
}

/// Headers of the websocket handshake passed on, each way.
const HANDSHAKE_REQUEST: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];
const HANDSHAKE_RESPONSE: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Relays the websocket to the agent at `base`: that agent answers the
/// handshake (and checks the token again), and once both sides have
/// upgraded their connections are joined, byte for byte, until either
/// ends. A refusal there comes back as it was.
async fn relay_exec(mut request: Request, base: &str) -> Result<Reply, ApiError> {
    let caller = request
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("alloc exec needs a websocket connection"))?;
    let (outgoing, url) = relayed(&request, base, http::Method::GET, HANDSHAKE_REQUEST)?;
    let response = outgoing.send().await.map_err(|error| {
        tracing::debug!(%url, %error, "relaying alloc exec failed");
        no_path()
    })?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return whole_answer(response).await;
    }
    let mut answer = http::Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for name in HANDSHAKE_RESPONSE {
        if let Some(value) = response.headers().get(*name) {
            answer = answer.header(*name, value);
        }
    }
    let answer = answer
        .body(axum::body::Body::empty())
        .map_err(|error| ApiError::internal(error.to_string()))?;
    tokio::spawn(async move {
        let (node, caller) = match tokio::join!(response.upgrade(), caller) {
            (Ok(node), Ok(caller)) => (node, caller),
            _ => return,
        };
        let mut node = node;
        let mut caller = hyper_util::rt::TokioIo::new(caller);
        let _ = tokio::io::copy_bidirectional(&mut caller, &mut node).await;
    });
    Ok(Reply::handover(answer))
}

fn frame(stream: &str, data: &[u8]) -> Message {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    Message::Text(json!({ stream: { "data": encoded } }).to_string().into())
}

/// What happened next in a session.
enum Event {
    /// A piece of output, or `None` once the output has ended.
    Output(Option<Result<ExecOutput, caravan_drivers::DriverError>>),
    Input(Message),
    /// The command exited (its code, or -1 when unknown).
    Exited(i32),
    /// The caller closed the socket or went away.
    CallerGone,
}

/// What goes to the command's input, in order, from its own task: a
/// command that does not read its input must not stop its output.
enum Stdin {
    Data(Vec<u8>),
    Close,
}

/// Input frames queued for a command that reads slowly; beyond this the
/// input is closed rather than held in memory.
const STDIN_QUEUE: usize = 64;
/// How long output is still read once the command has exited (a child
/// it left may hold the output open for ever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Writes queued input to the command until the queue closes.
fn feed_input(
    mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) -> tokio::sync::mpsc::Sender<Stdin> {
    let (sender, mut queue) = tokio::sync::mpsc::channel(STDIN_QUEUE);
    tokio::spawn(async move {
        while let Some(item) = queue.recv().await {
            match item {
                Stdin::Data(bytes) => {
                    if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                        return;
                    }
                }
                Stdin::Close => break,
            }
        }
        let _ = input.shutdown().await;
    });
    sender
}

/// Moves input to the command and its output to the caller until the
/// command has exited and its output is drained (bounded), or the caller
/// has gone (dropping the session kills the command).
async fn pump(mut socket: WebSocket, session: ExecSession, early: Option<Message>) {
    let ExecSession {
        input,
        mut output,
        exit,
        resize,
    } = session;
    let mut stdin = Some(feed_input(input));
    if let Some(message) = early {
        handle_input(message, &mut stdin, resize.as_ref());
    }
    let mut exit = futures::FutureExt::fuse(exit);
    let mut exit_code = None;
    let mut output_open = true;
    let mut drain_until = None;
    loop {
        if exit_code.is_some() && (!output_open || drain_until.is_some_and(|t| Instant::now() > t))
        {
            break;
        }
        let idle = match drain_until {
            Some(until) => until.saturating_duration_since(Instant::now()),
            None => IDLE_LIMIT,
        };
        let next = tokio::time::timeout(idle, async {
            tokio::select! {
                item = output.next(), if output_open => Event::Output(item),
                code = &mut exit, if exit_code.is_none() => Event::Exited(code.unwrap_or(-1)),
                message = socket.recv() => match message {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Event::CallerGone,
                    Some(Ok(message)) => Event::Input(message),
                },
            }
        })
        .await;
        match next {
            // Idle too long before the exit; or the drain is over.
            Err(_) if exit_code.is_none() => return,
            Err(_) => break,
            Ok(Event::CallerGone) => return,
            Ok(Event::Input(message)) => handle_input(message, &mut stdin, resize.as_ref()),
            Ok(Event::Exited(code)) => {
                exit_code = Some(code);
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            }
            Ok(Event::Output(Some(Ok(piece)))) => {
                let message = match piece {
                    ExecOutput::Stdout(data) => frame("stdout", &data),
                    ExecOutput::Stderr(data) => frame("stderr", &data),
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            Ok(Event::Output(Some(Err(error)))) => {
                tracing::debug!(%error, "exec output failed");
                output_open = false;
            }
            Ok(Event::Output(None)) => output_open = false,
        }
    }
    let code = exit_code.unwrap_or(-1);
    let exited = json!({"exited": true, "result": {"exit_code": code}}).to_string();
    let _ = socket.send(Message::Text(exited.into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// A caller's frame; anything else (a ping, a handshake frame, an unknown
/// key) is none.
fn parse_input(message: &Message) -> Option<Input> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        Message::Binary(bytes) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

fn handle_input(
    message: Message,
    stdin: &mut Option<tokio::sync::mpsc::Sender<Stdin>>,
    resize: Option<&caravan_drivers::session::Resize>,
) {
    let Some(frame) = parse_input(&message) else {
        return;
    };
    if let Some(input) = frame.stdin {
        if let (Some(data), Some(queue)) = (input.data, stdin.as_ref()) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                // A full queue: the command is not reading; its input is
                // closed rather than buffered without bound.
                if queue.try_send(Stdin::Data(bytes)).is_err() {
                    *stdin = None;
                }
            }
        }
        if input.close {
            if let Some(queue) = stdin.take() {
                let _ = queue.try_send(Stdin::Close);
            }
        }
    }
    if let (Some(size), Some(resize)) = (frame.tty_size, resize) {
        if size.width > 0 && size.height > 0 {
            tokio::spawn(resize(size.width, size.height));
        }
    }
}
