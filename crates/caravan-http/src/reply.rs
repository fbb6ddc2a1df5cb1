//! What a handler answers, before the common layer adds headers and
//! formatting.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use caravan_api_types::sync::lock;
use http::StatusCode;
use serde::Serialize;

use crate::error::ApiError;

/// A body sent while it is produced (a followed file, a relayed stream),
/// taken once when the reply is rendered. Shared, so a `Reply` stays
/// `Clone`; equal only to itself.
#[derive(Clone)]
pub struct Streamed(Arc<Mutex<Option<axum::body::Body>>>);

impl Streamed {
    pub fn new(body: axum::body::Body) -> Self {
        Self(Arc::new(Mutex::new(Some(body))))
    }

    /// The body, the first time only.
    pub fn take(&self) -> Option<axum::body::Body> {
        lock(&self.0).take()
    }
}

impl PartialEq for Streamed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Streamed {}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Streamed(..)")
    }
}

/// A response the handler made whole (a websocket upgrade), sent as it
/// is; shared and taken once, as [`Streamed`].
#[derive(Clone)]
pub struct Handover(Arc<Mutex<Option<axum::response::Response>>>);

impl Handover {
    /// The response, the first time only.
    pub fn take(&self) -> Option<axum::response::Response> {
        lock(&self.0).take()
    }
}

impl PartialEq for Handover {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Handover {}

impl std::fmt::Debug for Handover {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Handover(..)")
    }
}

/// Which index header a reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// A read: `X-Nomad-Index`, `X-Nomad-KnownLeader`, `X-Nomad-LastContact`.
    Query { index: u64 },
    /// A write: `X-Nomad-Index` with the Raft index of the write.
    Write { index: u64 },
    /// No index headers.
    None,
}

/// A successful (or deliberately non-2xx, like an unhealthy health check)
/// answer with a JSON body or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// Compact JSON, or `None` for an empty body.
    pub body: Option<Bytes>,
    pub meta: Meta,
    /// `X-Nomad-NextToken`: set when a paginated list has another page.
    pub next_token: Option<String>,
    /// A body that is not JSON (file contents, plain logs, a relayed
    /// answer): its content type; `?pretty` leaves it alone.
    pub content_type: Option<http::HeaderValue>,
    /// A streamed body, sent instead of `body`.
    pub stream: Option<Streamed>,
    /// A whole response, sent instead of all the above.
    pub handover: Option<Handover>,
}

impl Reply {
    /// 200 with `value` as JSON.
    pub fn json(value: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(value)
            .map_err(|error| ApiError::internal(format!("failed to encode response: {error}")))?;
        Ok(Self {
            status: StatusCode::OK,
            body: Some(Bytes::from(body)),
            meta: Meta::None,
            next_token: None,
            content_type: None,
            stream: None,
            handover: None,
        })
    }

    /// 200 with an already-encoded JSON body (shared, not copied).
    pub fn json_bytes(body: Bytes) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            meta: Meta::None,
            next_token: None,
            content_type: None,
            stream: None,
            handover: None,
        }
    }

    /// 200 with an empty body, as Nomad answers handlers that return nothing.
    pub fn empty() -> Self {
        Self {
            status: StatusCode::OK,
            body: None,
            meta: Meta::None,
            next_token: None,
            content_type: None,
            stream: None,
            handover: None,
        }
    }

    /// 200 with `body` as it is, of `content_type`.
    pub fn raw(body: Bytes, content_type: http::HeaderValue) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            meta: Meta::None,
            next_token: None,
            content_type: Some(content_type),
            stream: None,
            handover: None,
        }
    }

    /// 200 with `body` sent as it is produced, of `content_type`.
    pub fn streamed(body: axum::body::Body, content_type: http::HeaderValue) -> Self {
        Self {
            stream: Some(Streamed::new(body)),
            ..Self::raw(Bytes::new(), content_type)
        }
    }

    /// `response` sent as it is (a websocket upgrade).
    pub fn handover(response: axum::response::Response) -> Self {
        Self {
            handover: Some(Handover(Arc::new(Mutex::new(Some(response))))),
            ..Self::empty()
        }
    }

    pub fn with_next_token(mut self, token: Option<String>) -> Self {
        self.next_token = token;
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn query_index(mut self, index: u64) -> Self {
        self.meta = Meta::Query { index };
        self
    }

    pub fn write_index(mut self, index: u64) -> Self {
        self.meta = Meta::Write { index };
        self
    }
}
