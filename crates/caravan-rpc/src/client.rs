//! The typed client for the RPC port.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::{ClusterKey, AUTH_HEADER, BODY_HASH_HEADER};
use crate::error::RpcError;

/// Why a call got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nothing answered there (refused, no route, reset before a reply);
    /// another server may.
    #[error("failed to reach server {server}: {message}")]
    Unreachable { server: String, message: String },
    #[error("server {server} did not answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    /// The server answered something that is not this RPC's reply.
    #[error("bad reply from server {server}: {message}")]
    Protocol { server: String, message: String },
    /// The server answered with an error.
    #[error(transparent)]
    Remote(#[from] RpcError),
}

impl CallError {
    /// Whether trying another server (or again later) may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Remote(error) => error.is_retryable(),
            _ => true,
        }
    }
}

/// Calls RPCs on servers: JSON bodies, `Result<T, RpcError>` replies, and
/// the cluster key's signature on every request when this side holds it.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    key: Option<Arc<ClusterKey>>,
    scheme: &'static str,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("signed", &self.key.is_some())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl RpcClient {
    /// A client that signs with `key` (servers) or not at all (clients).
    pub fn new(http: reqwest::Client, key: Option<Arc<ClusterKey>>) -> Self {
        Self {
            http,
            key,
            scheme: "http",
        }
    }

    /// Talks HTTPS (the RPC port under `tls { rpc = true }`); `http` must
    /// then carry the agent's TLS configuration.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.scheme = if tls { "https" } else { "http" };
        self
    }

    /// The URL of `path` on `server`.
    pub fn url(&self, server: &str, path: &str) -> String {
        format!("{}://{server}{path}", self.scheme)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `server` with `body`, signed when this side holds the
    /// cluster key. Raw bodies (snapshots) use this directly.
    pub fn request(
        &self,
        method: http::Method,
        server: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method.clone(), self.url(server, path));
        if let Some(key) = &self.key {
            let (signature, hash) = key.sign(method.as_str(), path, &body);
            request = request
                .header(AUTH_HEADER, signature)
                .header(BODY_HASH_HEADER, hash);
        }
        request.body(body)
    }

    /// POSTs `body` as JSON and decodes the typed reply.
    pub async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        server: &str,
        path: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|error| CallError::Protocol {
            server: server.to_string(),
            message: error.to_string(),
        })?;
        let request = self
            .request(http::Method::POST, server, path, bytes)
            .header(http::header::CONTENT_TYPE, "application/json");
        self.send(server, request, timeout).await
    }

    /// GETs `path` and decodes the typed reply.
    pub async fn get<R: DeserializeOwned>(
        &self,
        server: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let request = self.request(http::Method::GET, server, path, Vec::new());
        self.send(server, request, timeout).await
    }

    /// Sends a built request and decodes `Result<R, RpcError>`.
    pub async fn send<R: DeserializeOwned>(
        &self,
        server: &str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let failed = |error: reqwest::Error| {
            if error.is_timeout() {
                CallError::Timeout {
                    server: server.to_string(),
                    timeout,
                }
            } else {
                CallError::Unreachable {
                    server: server.to_string(),
                    message: error.to_string(),
                }
            }
        };
        let response = request.timeout(timeout).send().await.map_err(failed)?;
        let status = response.status();
        let body = response.bytes().await.map_err(failed)?;
        match serde_json::from_slice::<Result<R, RpcError>>(&body) {
            Ok(reply) => Ok(reply?),
            Err(error) => Err(CallError::Protocol {
                server: server.to_string(),
                message: format!(
                    "{status}: {error}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            }),
        }
    }
}
