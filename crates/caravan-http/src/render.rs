//! Turning replies and errors into HTTP responses with Nomad's headers.

use axum::body::Body;
use axum::response::Response;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue};

use crate::context::AgentContext;
use crate::error::ApiError;
use crate::reply::{Meta, Reply, Streamed};

pub const INDEX_HEADER: &str = "x-nomad-index";
pub const KNOWN_LEADER_HEADER: &str = "x-nomad-knownleader";
pub const LAST_CONTACT_HEADER: &str = "x-nomad-lastcontact";
pub const NEXT_TOKEN_HEADER: &str = "x-nomad-nexttoken";

/// A successful reply, with its index headers and `?pretty` applied.
pub fn render_reply(ctx: &AgentContext, reply: Reply, pretty: bool, is_query: bool) -> Response {
    if let Some(response) = reply.handover.as_ref().and_then(|handover| handover.take()) {
        return response;
    }
    let json = reply.content_type.is_none();
    let body = match reply.body {
        Some(body) if pretty && json => prettify(&body).map(bytes::Bytes::from).unwrap_or(body),
        Some(body) => body,
        None => bytes::Bytes::new(),
    };
    let streamed = reply.stream.as_ref().and_then(Streamed::take);
    let has_body = streamed.is_some() || !body.is_empty();
    let mut response = Response::new(streamed.unwrap_or_else(|| Body::from(body)));
    *response.status_mut() = reply.status;
    match reply.content_type {
        Some(content_type) => {
            response.headers_mut().insert(CONTENT_TYPE, content_type);
        }
        None if has_body => {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        None => {}
    }
    match reply.meta {
        Meta::Write { index } => set_header(&mut response, INDEX_HEADER, index.to_string()),
        Meta::Query { index } => query_headers(ctx, &mut response, Some(index)),
        Meta::None if is_query => query_headers(ctx, &mut response, None),
        Meta::None => {}
    }
    if let Some(token) = reply.next_token {
        set_header(&mut response, NEXT_TOKEN_HEADER, token);
    }
    extra_headers(ctx, &mut response);
    response
}

/// The longest error body, in bytes. Messages quote input (a name, a
/// value) and the input is the caller's; past this the message is cut and
/// ends in `...`, so a huge bad value is never echoed back whole.
pub const MAX_ERROR_BODY: usize = 1024;

/// `message` cut to at most [`MAX_ERROR_BODY`] bytes, on a character
/// boundary.
fn clip_message(mut message: String) -> String {
    if message.len() <= MAX_ERROR_BODY {
        return message;
    }
    let mut end = MAX_ERROR_BODY - "...".len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str("...");
    message
}

/// An error: Nomad's status code and the bare message as plain text.
pub fn render_error(
    ctx: &AgentContext,
    error: ApiError,
    _pretty: bool,
    is_query: bool,
) -> Response {
    let mut response = Response::new(Body::from(clip_message(error.message)));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if is_query {
        query_headers(ctx, &mut response, None);
    }
    extra_headers(ctx, &mut response);
    response
}

/// Nomad's 4-space indented form with a trailing newline.
fn prettify(body: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() * 2);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&value, &mut serializer).ok()?;
    out.push(b'\n');
    Some(out)
}

/// `X-Nomad-Index`, `X-Nomad-KnownLeader` and `X-Nomad-LastContact`, with
/// this agent's view of the leader.
fn query_headers(ctx: &AgentContext, response: &mut Response, index: Option<u64>) {
    let (known_leader, last_contact_ms, latest) = match &ctx.server {
        Some(server) => (
            server.leader().is_some(),
            server.last_contact().map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            }),
            server.store().snapshot().latest_index(),
        ),
        None => {
            let known = ctx
                .client
                .as_ref()
                .is_some_and(|client| !client.servers().get().is_empty());
            (known, 0, 0)
        }
    };
    set_header(response, INDEX_HEADER, index.unwrap_or(latest).to_string());
    set_header(response, KNOWN_LEADER_HEADER, known_leader.to_string());
    set_header(response, LAST_CONTACT_HEADER, last_contact_ms.to_string());
}

fn extra_headers(ctx: &AgentContext, response: &mut Response) {
    for (name, value) in &ctx.config.http_api_response_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
}

fn set_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut() {
        assert_eq!(clip_message("short".into()), "short");
        let cut = clip_message("\u{e9}".repeat(MAX_ERROR_BODY));
        assert!(
            cut.len() <= MAX_ERROR_BODY && cut.ends_with("..."),
            "{}",
            cut.len()
        );
        let exact = "x".repeat(MAX_ERROR_BODY);
        assert_eq!(clip_message(exact.clone()), exact);
    }
}
