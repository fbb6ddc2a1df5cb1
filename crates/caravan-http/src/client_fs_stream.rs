//! Streamed answers of the client fs endpoints (scheduling.md §10.2): a
//! followed file or log sent as it grows, in frames batched every 200 ms
//! with a `{}` heartbeat each second, and the relay of such a stream from
//! the agent that holds the allocation.
//!
//! A follow ends when the caller goes away, when a followed file is
//! deleted, or, for logs, once the task is dead and its output is read
//! (Nomad's log follow runs until the caller disconnects; ending lets a
//! caller that follows a finished task see the end of it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine;
use bytes::Bytes;
use caravan_client::fs::follow::{Follower, Piece};
use caravan_client::Client;
use futures::channel::mpsc;
use futures::SinkExt;
use serde::Serialize;

use crate::client_route::{no_path, relayed, whole_answer};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::Request;

/// Data is gathered this long before it is sent.
const BATCH: Duration = Duration::from_millis(200);
/// A framed stream sends `{}` this often, data or not.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Frames waiting for a slow caller; beyond this reading pauses.
const BUFFERED_FRAMES: usize = 32;
/// Time allowed for the holding agent to start answering a relayed stream.
const RELAY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The task whose death ends a log follow.
pub(crate) struct TaskWatch {
    pub client: Arc<Client>,
    pub alloc_id: String,
    pub task: String,
}

impl TaskWatch {
    /// Dead, or its allocation gone from this client.
    fn dead(&self) -> bool {
        self.client
            .alloc_view(&self.alloc_id)
            .and_then(|view| {
                view.tasks
                    .get(&self.task)
                    .map(|state| state.state == "dead")
            })
            .unwrap_or(true)
    }
}

/// A body that follows `follower`: frames (or raw bytes when `plain`)
/// as data arrives.
pub(crate) fn follow(follower: Follower, plain: bool, watch: Option<TaskWatch>) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(BUFFERED_FRAMES);
    tokio::spawn(run(follower, plain, watch, sender));
    Body::from_stream(receiver)
}

async fn run(
    mut follower: Follower,
    plain: bool,
    watch: Option<TaskWatch>,
    mut sender: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let mut last_heartbeat = Instant::now();
    loop {
        // Seen dead before this poll: what the poll finds is the last.
        let dead = watch.as_ref().is_some_and(TaskWatch::dead);
        let polled = tokio::task::spawn_blocking(move || {
            let pieces = follower.poll(BUFFERED_FRAMES);
            (follower, pieces)
        })
        .await;
        let pieces = match polled {
            Ok((back, Ok(pieces))) => {
                follower = back;
                pieces
            }
            // A failure mid-stream ends the body (the status is sent).
            Ok((_, Err(error))) => {
                tracing::debug!(%error, "following a file failed");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "following a file failed");
                return;
            }
        };
        let full = pieces.len() >= BUFFERED_FRAMES;
        let got = !pieces.is_empty();
        let out = encode(&pieces, plain);
        if !out.is_empty() && sender.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        if follower.ended() || (dead && !got) {
            return;
        }
        if !plain && last_heartbeat.elapsed() >= HEARTBEAT {
            if sender.send(Ok(Bytes::from_static(b"{}"))).await.is_err() {
                return;
            }
            last_heartbeat = Instant::now();
        }
        // Plain output has no heartbeat to fail on: a caller that left
        // is noticed here.
        if sender.is_closed() {
            return;
        }
        if !full {
            tokio::time::sleep(BATCH).await;
        }
    }
}

/// Pieces as frames, or (plain) their data alone.
fn encode(pieces: &[Piece], plain: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Data(chunk) if plain => out.extend_from_slice(&chunk.data),
            Piece::Data(chunk) => {
                Frame::data(chunk.offset, &chunk.data, &chunk.file).write(&mut out)
            }
            Piece::Event { .. } if plain => {}
            Piece::Event { file, event } => Frame {
                file,
                file_event: event,
                ..Frame::default()
            }
            .write(&mut out),
        }
    }
    out
}

/// One frame of a stream, as Nomad's `StreamFrame` encodes it: fields in
/// this order, empty ones left out; `{}` is a heartbeat.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Frame<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub file: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub file_event: &'a str,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl<'a> Frame<'a> {
    pub fn data(offset: u64, data: &[u8], file: &'a str) -> Self {
        Self {
            offset,
            data: base64::engine::general_purpose::STANDARD.encode(data),
            file,
            file_event: "",
        }
    }

    /// Appends the frame's JSON to `out` (nothing between frames).
    pub fn write(&self, out: &mut Vec<u8>) {
        // A struct of strings and integers always serializes.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(b"{}");
        }
    }
}

/// Relays a streamed request to the agent at `base` and streams its
/// answer back as it comes. Unlike a buffered relay it has no overall
/// time limit: it lasts as long as the stream, and ends when either side
/// does (dropping the body closes the connection to the holder).
pub(crate) async fn relay_stream(request: &Request, base: &str) -> Result<Reply, ApiError> {
    let (outgoing, url) = relayed(request, base, http::Method::GET, &[])?;
    let response = match tokio::time::timeout(RELAY_START_TIMEOUT, outgoing.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            tracing::debug!(%url, %error, "relaying a client stream failed");
            return Err(no_path());
        }
        Err(_) => return Err(no_path()),
    };
    if response.status() != reqwest::StatusCode::OK {
        // An error is short and complete: pass it on whole.
        return whole_answer(response).await;
    }
    let content_type = crate::client_route::relayed_content_type(
        response.headers().get(http::header::CONTENT_TYPE),
    );
    let chunks = futures::stream::unfold(response, |mut response| async move {
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, reqwest::Error>(chunk), response)),
            Ok(None) => None,
            Err(error) => Some((Err(error), response)),
        }
    });
    Ok(Reply::streamed(Body::from_stream(chunks), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_nomads_stream_frames() {
        let mut out = Vec::new();
        Frame::data(5, b"hello", "alloc/logs/web.stdout.0").write(&mut out);
        Frame::default().write(&mut out);
        let event = Frame {
            file: "alloc/logs/web.stdout.0",
            file_event: "file truncated",
            ..Frame::default()
        };
        event.write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"Offset":5,"Data":"aGVsbG8=","File":"alloc/logs/web.stdout.0"}"#,
                "{}",
                r#"{"File":"alloc/logs/web.stdout.0","FileEvent":"file truncated"}"#,
            )
        );
    }
}
