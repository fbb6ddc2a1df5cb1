//! Where a client endpoint (`/v1/client/...`) is answered (scheduling.md
//! §10): by this agent's own client when it holds the allocation or is
//! the node asked for, else relayed to the agent of the node that does
//! (a server knows every node's HTTP address), or, from a client-only
//! agent, through one of its servers.

use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::node::NODE_STATUS_DOWN;
use caravan_client::runner::AllocView;
use caravan_client::Client;
use http::{HeaderValue, StatusCode};

use crate::error::ApiError;
use crate::forward::{forwarded_hops, FORWARDED_HEADER};
use crate::reply::Reply;
use crate::route::Request;

/// A relayed request may take this long (a large file, a slow node).
const RELAY_TIMEOUT: Duration = Duration::from_secs(300);
/// A client endpoint is relayed at most twice (client agent → server →
/// node agent), so two agents can never pass a request back and forth.
const MAX_RELAYS: u32 = 2;

/// Who answers for an allocation.
pub enum AllocHolder {
    /// This agent's client holds it (boxed: a view is large, a relay
    /// target small).
    Local(Box<AllocView>, Arc<Client>),
    /// The agent at this base URL (`http://host:port`) does.
    Remote(String),
}

/// Who answers for a node.
pub enum NodeHolder {
    Local(Arc<Client>),
    Remote(String),
}

fn unknown_alloc(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Unknown allocation {id:?}"))
}

pub(crate) fn no_path() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "No path to node")
}

fn scheme(request: &Request) -> &'static str {
    if request.ctx.config.tls.http {
        "https"
    } else {
        "http"
    }
}

/// A server of this client-only agent, as a base URL (servers answer the
/// HTTP API on their RPC port too).
fn via_server(request: &Request, client: &Client) -> Result<String, ApiError> {
    let servers = client.servers().get();
    let server = servers.first().ok_or_else(no_path)?;
    let scheme = if request.ctx.config.tls.rpc {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{server}"))
}

/// The agent of a ready node, as a base URL.
fn node_base(request: &Request, node: &caravan_api_types::node::Node) -> Result<String, ApiError> {
    // Only `host:port`: the address comes from the node's registration
    // and must not be able to choose the path or the user of the URL.
    let plain_address = !node.http_addr.is_empty()
        && !node
            .http_addr
            .contains(|c: char| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace());
    if node.status == NODE_STATUS_DOWN || !plain_address {
        return Err(no_path());
    }
    Ok(format!("{}://{}", scheme(request), node.http_addr))
}

/// Who answers for allocation `alloc_id`.
pub fn alloc_holder(request: &Request, alloc_id: &str) -> Result<AllocHolder, ApiError> {
    if alloc_id.is_empty() {
        return Err(ApiError::bad_request("must provide a valid alloc id"));
    }
    if let Some(client) = &request.ctx.client {
        if let Some(view) = client.alloc_view(alloc_id) {
            return Ok(AllocHolder::Local(Box::new(view), Arc::clone(client)));
        }
    }
    let Some(server) = &request.ctx.server else {
        return match &request.ctx.client {
            Some(client) => Ok(AllocHolder::Remote(via_server(request, client)?)),
            None => Err(no_path()),
        };
    };
    let state = server.store().snapshot();
    let alloc = state
        .alloc(alloc_id)
        .ok_or_else(|| unknown_alloc(alloc_id))?;
    if request
        .ctx
        .client
        .as_ref()
        .is_some_and(|client| client.node_id() == alloc.node_id)
    {
        // Ours, but its runner is gone (collected, or never started).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("state for allocation {alloc_id} not found on client"),
        ));
    }
    let node = state.node(&alloc.node_id).ok_or_else(no_path)?;
    Ok(AllocHolder::Remote(node_base(request, node)?))
}

/// [`alloc_holder`], once the caller holds one of `capabilities` in the
/// allocation's namespace. A server checks before relaying (the node's
/// agent checks again); a client-only agent knows the namespace only of
/// its own allocations and leaves the rest to its server.
pub fn permitted_holder(
    request: &Request,
    alloc_id: &str,
    capabilities: &[&str],
) -> Result<AllocHolder, ApiError> {
    let allowed = |namespace: &str| {
        capabilities
            .iter()
            .any(|capability| request.identity.acl.allows_namespace(namespace, capability))
    };
    let holder = alloc_holder(request, alloc_id)?;
    let namespace = match &holder {
        AllocHolder::Local(view, _) => Some(view.alloc.namespace.clone()),
        AllocHolder::Remote(_) => request.ctx.server.as_ref().and_then(|server| {
            let state = server.store().snapshot();
            state.alloc(alloc_id).map(|alloc| alloc.namespace.clone())
        }),
    };
    match namespace {
        Some(namespace) if !allowed(&namespace) => Err(ApiError::permission_denied()),
        _ => Ok(holder),
    }
}

/// Who answers for node `node_id` (the `node_id` query parameter), or for
/// this agent's own node when none is given.
pub fn node_holder(request: &Request) -> Result<NodeHolder, ApiError> {
    let wanted = request.query_value("node_id").filter(|id| !id.is_empty());
    if let Some(client) = &request.ctx.client {
        if wanted.is_none_or(|id| id == client.node_id()) {
            return Ok(NodeHolder::Local(Arc::clone(client)));
        }
    }
    let Some(node_id) = wanted else {
        return Err(ApiError::bad_request(
            "No local Node and node_id not provided",
        ));
    };
    let Some(server) = &request.ctx.server else {
        return match &request.ctx.client {
            Some(client) => Ok(NodeHolder::Remote(via_server(request, client)?)),
            None => Err(no_path()),
        };
    };
    let state = server.store().snapshot();
    let node = state
        .node(node_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown node {node_id:?}")))?;
    Ok(NodeHolder::Remote(node_base(request, node)?))
}

/// The content type of a relayed answer: only the types the client
/// endpoints send pass; anything else (a node answering `text/html`) is
/// served as bytes, never as a page of the server's origin.
pub fn relayed_content_type(sent: Option<&HeaderValue>) -> HeaderValue {
    const ALLOWED: [&str; 4] = [
        "application/json",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/octet-stream",
    ];
    sent.and_then(|value| value.to_str().ok())
        .and_then(|value| {
            ALLOWED
                .iter()
                .find(|allowed| value.eq_ignore_ascii_case(allowed))
        })
        .map_or_else(
            || HeaderValue::from_static("application/octet-stream"),
            |allowed| HeaderValue::from_static(allowed),
        )
}

/// The relay count a request sent on carries, unless it has been relayed
/// as often as it may be.
pub(crate) fn next_hop(request: &Request) -> Result<u32, ApiError> {
    let hops = forwarded_hops(&request.headers).saturating_add(1);
    match hops > MAX_RELAYS {
        true => Err(no_path()),
        false => Ok(hops),
    }
}

/// `request` as it is sent on to the agent at `base`: `method`, its path
/// and query, the relay count, the caller's token and the `extra` headers
/// named. Redirects are never followed (the agents' HTTP client), so the
/// token goes nowhere else. Also the URL, for logs.
pub(crate) fn relayed(
    request: &Request,
    base: &str,
    method: http::Method,
    extra: &[&str],
) -> Result<(reqwest::RequestBuilder, String), ApiError> {
    let hops = next_hop(request)?;
    let url = format!("{base}{}", request.path_and_query);
    let mut outgoing = request
        .ctx
        .http_client
        .request(method, &url)
        .header(FORWARDED_HEADER, hops.to_string());
    for name in ["x-nomad-token", "authorization"].iter().chain(extra) {
        if let Some(value) = request.headers.get(*name) {
            outgoing = outgoing.header(*name, value);
        }
    }
    Ok((outgoing, url))
}

/// The node agent's whole answer, passed on as it came (status, an
/// endpoint's content type, body).
pub(crate) async fn whole_answer(response: reqwest::Response) -> Result<Reply, ApiError> {
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = relayed_content_type(response.headers().get(http::header::CONTENT_TYPE));
    let body = response.bytes().await.map_err(|error| {
        ApiError::internal(format!("failed to read the node's answer: {error}"))
    })?;
    Ok(Reply::raw(body, content_type).with_status(status))
}

/// Sends `request` on to the agent at `base` and answers with what it
/// answered (status, content type and body as they came).
pub async fn relay(request: &Request, base: &str) -> Result<Reply, ApiError> {
    let (outgoing, url) = relayed(request, base, request.method.clone(), &[])?;
    let response = outgoing
        .timeout(RELAY_TIMEOUT)
        .body(request.body.clone())
        .send()
        .await
        .map_err(|error| {
            tracing::debug!(%url, %error, "relaying a client request failed");
            no_path()
        })?;
    whole_answer(response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_answer_keeps_only_the_types_the_endpoints_send() {
        let of = |sent: &'static str| relayed_content_type(Some(&HeaderValue::from_static(sent)));
        assert_eq!(of("application/json"), "application/json");
        assert_eq!(of("text/plain; charset=utf-8"), "text/plain; charset=utf-8");
        assert_eq!(of("text/html"), "application/octet-stream");
        assert_eq!(of("image/svg+xml"), "application/octet-stream");
        assert_eq!(relayed_content_type(None), "application/octet-stream");
    }
}
