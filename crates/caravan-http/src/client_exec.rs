//! `/v1/client/allocation/:id/exec`: a command run inside a running task
//! over a websocket (`nomad alloc exec`), with Nomad's frames: the client
//! sends `{"stdin":{"data":"<base64>"}}`, `{"stdin":{"close":true}}` and
//! `{"tty_size":{"height":H,"width":W}}`; the agent sends
//! `{"stdout":{"data":...}}`, `{"stderr":{"data":...}}`, then
//! `{"exited":true,"result":{"exit_code":N}}` and closes.
//!
//! Answered by the agent whose client holds the allocation (the Go `api`
//! package, and so the `nomad` CLI, dials the node's own address first);
//! any other agent relays the websocket there byte for byte. The caller
//! needs `alloc-exec` in the allocation's namespace, and `alloc-node-exec`
//! too for a raw_exec task, which is not isolated from the node.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use base64::Engine;
use caravan_drivers::{ExecOutput, ExecRequest, ExecSession};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::client_route::{next_hop, no_path, permitted_holder, relayed_content_type, AllocHolder};
use crate::error::ApiError;
use crate::forward::FORWARDED_HEADER;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

/// The largest frame a caller may send (stdin arrives in small pieces).
const MAX_FRAME: usize = 1024 * 1024;
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
    Ok((task, ExecRequest { command, tty }))
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
    let session = manager
        .exec(&alloc_id, &task, exec_request)
        .await
        .map_err(lifecycle)?;
    let response = upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| pump(socket, session));
    Ok(Reply::handover(response))
}

/// Headers of the websocket handshake passed on, each way.
const HANDSHAKE_REQUEST: &[&str] = &[
    "x-nomad-token",
    "authorization",
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
    let hops = next_hop(&request)?;
    let caller = request
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("alloc exec needs a websocket connection"))?;
    let url = format!("{base}{}", request.path_and_query);
    let mut outgoing = request
        .ctx
        .http_client
        .get(&url)
        .header(FORWARDED_HEADER, hops.to_string());
    for name in HANDSHAKE_REQUEST {
        if let Some(value) = request.headers.get(*name) {
            outgoing = outgoing.header(*name, value);
        }
    }
    let response = outgoing.send().await.map_err(|error| {
        tracing::debug!(%url, %error, "relaying alloc exec failed");
        no_path()
    })?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = relayed_content_type(response.headers().get(http::header::CONTENT_TYPE));
        let body = response.bytes().await.unwrap_or_default();
        return Ok(Reply::raw(body, content_type).with_status(status));
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
    /// The caller closed the socket or went away.
    CallerGone,
}

/// Moves input to the command and its output to the caller until the
/// command has exited (or the caller has gone, which kills the command:
/// its session is dropped).
async fn pump(mut socket: WebSocket, session: ExecSession) {
    let ExecSession {
        input,
        mut output,
        exit,
        resize,
    } = session;
    let mut input = Some(input);
    loop {
        let next = tokio::time::timeout(IDLE_LIMIT, async {
            tokio::select! {
                item = output.next() => Event::Output(item),
                message = socket.recv() => match message {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Event::CallerGone,
                    Some(Ok(message)) => Event::Input(message),
                },
            }
        })
        .await;
        match next {
            Err(_) | Ok(Event::CallerGone) => return,
            Ok(Event::Input(message)) => handle_input(message, &mut input, resize.as_ref()).await,
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
                break;
            }
            Ok(Event::Output(None)) => break,
        }
    }
    let code = match exit.await {
        Ok(code) => code,
        Err(error) => {
            tracing::debug!(%error, "exec exit unknown");
            -1
        }
    };
    let exited = json!({"exited": true, "result": {"exit_code": code}}).to_string();
    let _ = socket.send(Message::Text(exited.into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn handle_input(
    message: Message,
    input: &mut Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    resize: Option<&caravan_drivers::session::Resize>,
) {
    let text = match message {
        Message::Text(text) => text.to_string(),
        Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => return,
    };
    // Anything else (a handshake frame, an unknown key) is ignored.
    let Ok(frame) = serde_json::from_str::<Input>(&text) else {
        return;
    };
    if let Some(stdin) = frame.stdin {
        if let (Some(data), Some(writer)) = (stdin.data, input.as_mut()) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                    *input = None;
                }
            }
        }
        if stdin.close {
            if let Some(mut writer) = input.take() {
                let _ = writer.shutdown().await;
            }
        }
    }
    if let (Some(size), Some(resize)) = (frame.tty_size, resize) {
        if size.width > 0 && size.height > 0 {
            resize(size.width, size.height).await;
        }
    }
}
