//! Deciding where a request runs, and carrying it there.
//!
//! A request that must run on the leader is sent, as the same HTTP request,
//! to the leader's RPC port, whose listener serves the same routes. The hop
//! count travels in a header so a request never circles between servers
//! that disagree about who leads.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use caravan_server::forward::{forward_with_hold, ForwardFailure, Placement, SendFailure};

use crate::consistency::Consistency;
use crate::context::AgentContext;
use crate::error::ApiError;
use crate::query::QueryOptions;
use crate::render::render_error;

/// Header carrying how many times a request was forwarded.
pub const FORWARDED_HEADER: &str = "x-caravan-forwarded";
/// A request is forwarded at most this many times.
const MAX_HOPS: u32 = caravan_server::forward::MAX_FORWARD_HOPS;
/// Time allowed on top of a blocking query's wait for a forwarded answer.
const FORWARD_SLACK: Duration = Duration::from_secs(15);

/// Where a request will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Here,
    /// Forward to the first of these RPC addresses that answers.
    Forward(Vec<String>),
}

/// How many times the request was already forwarded.
pub fn forwarded_hops(headers: &HeaderMap) -> u32 {
    headers
        .get(FORWARDED_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Decides where a request with `consistency` runs.
pub async fn plan(
    ctx: &AgentContext,
    consistency: Consistency,
    query: &QueryOptions,
    hops: u32,
) -> Result<Plan, ApiError> {
    if consistency != Consistency::Local {
        if let Some(region) = &query.region {
            if *region != ctx.config.region {
                return Err(ApiError::no_region_path());
            }
        }
    }
    let needs_leader = match consistency {
        Consistency::Local => return Ok(Plan::Here),
        Consistency::AnyServer => false,
        Consistency::Leader => true,
        Consistency::LeaderUnlessStale => !query.stale,
    };
    let Some(server) = &ctx.server else {
        // A client-only agent hands everything to its servers.
        let servers = ctx
            .client
            .as_ref()
            .map(|client| client.servers().get())
            .unwrap_or_default();
        if servers.is_empty() || hops >= MAX_HOPS {
            return Err(ApiError::internal("no known servers"));
        }
        return Ok(Plan::Forward(servers));
    };
    if !needs_leader {
        return Ok(Plan::Here);
    }
    match server.place_on_leader(hops).await {
        Ok(Placement::Here) => Ok(Plan::Here),
        Ok(Placement::Leader(leader)) => Ok(Plan::Forward(vec![leader.rpc_addr])),
        Err(_) => Err(ApiError::no_leader()),
    }
}

/// Sends the request to the first target that answers and relays its
/// answer unchanged.
pub async fn forward(
    ctx: &AgentContext,
    targets: &[String],
    parts: &Parts,
    body: Bytes,
    query: &QueryOptions,
) -> Response {
    let is_query = parts.method == http::Method::GET;
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let hops = forwarded_hops(&parts.headers).saturating_add(1);
    let timeout = query.blocking_wait() + query.blocking_wait() / 16 + FORWARD_SLACK;
    // Where to send it, when to send it again (a write only if it never
    // reached the server: once sent it may have been applied) and how long
    // to hold it through a failover are the server's shared rules.
    let client = match is_query {
        true => &ctx.http_client,
        false => &ctx.write_client,
    };
    let sent = forward_with_hold(
        ctx.server.as_deref(),
        targets.to_vec(),
        is_query,
        |target| {
            let mut request = client
                .request(parts.method.clone(), rpc_url(ctx, target, path))
                .timeout(timeout)
                .header(FORWARDED_HEADER, hops.to_string())
                .body(body.clone());
            for (name, value) in &parts.headers {
                if is_end_to_end(name) {
                    request = request.header(name, value);
                }
            }
            async move {
                request.send().await.map_err(|error| {
                    if error.is_connect() {
                        SendFailure::NotSent(error)
                    } else {
                        SendFailure::MaybeRan(error)
                    }
                })
            }
        },
    )
    .await;
    let failed = match sent {
        Ok(response) => return relay(response).await,
        Err(ForwardFailure::MaybeRan { target, error }) => {
            tracing::debug!(%target, %error, "forwarded write failed after sending");
            format!("failed to forward request to {target}: {error}")
        }
        Err(ForwardFailure::NoTarget(Some((target, error)))) => {
            tracing::debug!(%target, %error, "forwarding failed");
            format!("failed to forward request to {target}: {error}")
        }
        Err(ForwardFailure::NoTarget(None)) => String::from("no servers to forward to"),
    };
    render_error(ctx, ApiError::internal(failed), query.pretty, is_query)
}

/// The URL of `path` on a server's RPC port: HTTPS under
/// `tls { rpc = true }`, where `ctx.http_client` carries the agent's
/// certificate.
pub fn rpc_url(ctx: &AgentContext, server: &str, path: &str) -> String {
    let scheme = if ctx.config.tls.rpc { "https" } else { "http" };
    format!("{scheme}://{server}{path}")
}

fn is_end_to_end(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "connection"
            | "content-length"
            | "transfer-encoding"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | FORWARDED_HEADER
    )
}

async fn relay(response: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers: Vec<(HeaderName, HeaderValue)> = response
        .headers()
        .iter()
        .filter(|(name, _)| is_end_to_end(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => {
            let mut failed = Response::new(Body::from(format!(
                "failed to read forwarded response: {error}"
            )));
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return failed;
        }
    };
    let mut relayed = Response::new(Body::from(body));
    *relayed.status_mut() = status;
    for (name, value) in headers {
        relayed.headers_mut().insert(name, value);
    }
    relayed
}
