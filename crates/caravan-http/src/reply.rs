//! What a handler answers, before the common layer adds headers and
//! formatting.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use crate::error::ApiError;

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
        })
    }

    /// 200 with an already-encoded JSON body (shared, not copied).
    pub fn json_bytes(body: Bytes) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
            meta: Meta::None,
            next_token: None,
        }
    }

    /// 200 with an empty body, as Nomad answers handlers that return nothing.
    pub fn empty() -> Self {
        Self {
            status: StatusCode::OK,
            body: None,
            meta: Meta::None,
            next_token: None,
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
