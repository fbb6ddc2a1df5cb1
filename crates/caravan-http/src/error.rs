//! API errors: Nomad's status codes with plain-text bodies.

use http::StatusCode;

/// An error answered to the caller as `status` with `message` as the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn permission_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Permission denied")
    }

    /// 403 with a reason other than Nomad's plain `Permission denied`.
    pub fn permission_denied_with(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn invalid_method(status: StatusCode) -> Self {
        Self::new(status, "Invalid method")
    }

    pub fn no_leader() -> Self {
        Self::internal("No cluster leader")
    }

    pub fn no_region_path() -> Self {
        Self::internal("No path to region")
    }
}
