//! The route table and the one path every API request takes.
//!
//! Each route declares, per method, the ACL capability it needs and where
//! it must run (here, on the leader, on any server). [`dispatch`] applies
//! those declarations in one place: query options, region, forwarding,
//! ACL, the handler, then Nomad's headers, errors and `?pretty`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::response::Response;
use bytes::Bytes;
pub use caravan_acl::Capability;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::acl_check::{self, Identity};
pub use crate::consistency::Consistency;
use crate::context::AgentContext;
use crate::error::ApiError;
use crate::forward::{forward, forwarded_hops, plan, Plan};
use crate::query::QueryOptions;
use crate::render::{render_error, render_reply};
use crate::reply::Reply;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What an endpoint requires of the caller's token (Nomad's API pages name
/// it per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acl {
    /// No check; the token is not even looked at (status, regions, health).
    None,
    /// The token's policies must grant this capability.
    Require(Capability),
    /// The handler decides from the resolved identity (e.g. a token may read
    /// itself, policy lists are filtered to what the token holds).
    InHandler,
}

pub const AGENT_READ: Acl = Acl::Require(Capability::AgentRead);
pub const AGENT_WRITE: Acl = Acl::Require(Capability::AgentWrite);
pub const NODE_READ: Acl = Acl::Require(Capability::NodeRead);
pub const NODE_WRITE: Acl = Acl::Require(Capability::NodeWrite);
pub const OPERATOR_READ: Acl = Acl::Require(Capability::OperatorRead);
pub const OPERATOR_WRITE: Acl = Acl::Require(Capability::OperatorWrite);
pub const MANAGEMENT: Acl = Acl::Require(Capability::Management);

/// A handler: takes the parsed request, answers a reply or an API error.
pub type Handler =
    Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Reply, ApiError>> + Send + Sync>;

/// One method (or several) of a route.
pub struct Endpoint {
    pub methods: &'static [Method],
    pub acl: Acl,
    pub consistency: Consistency,
    pub handler: Handler,
}

/// A path and what each method does there.
pub struct Route {
    pub path: &'static str,
    pub endpoints: Vec<Endpoint>,
    /// Status for a method the route does not serve (Nomad answers 405 in
    /// most places, 404 or 501 in a few).
    pub wrong_method: StatusCode,
}

/// Builds an [`Endpoint`] from an async function.
pub fn endpoint<F, Fut>(
    methods: &'static [Method],
    acl: Acl,
    consistency: Consistency,
    handler: F,
) -> Endpoint
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, ApiError>> + Send + 'static,
{
    Endpoint {
        methods,
        acl,
        consistency,
        handler: Arc::new(move |request| Box::pin(handler(request))),
    }
}

pub const GET: &[Method] = &[Method::GET];
pub const PUT: &[Method] = &[Method::PUT];
pub const PUT_POST: &[Method] = &[Method::PUT, Method::POST];
pub const DELETE: &[Method] = &[Method::DELETE];

/// A request as handlers see it.
pub struct Request {
    pub ctx: Arc<AgentContext>,
    pub method: Method,
    pub path_params: Vec<(String, String)>,
    /// Every query pair, in order (some parameters repeat).
    pub pairs: Vec<(String, String)>,
    pub query: QueryOptions,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The caller, resolved from its token (unrestricted when ACLs are off).
    pub identity: Identity,
    /// The path and query as sent (what a relay to another agent sends on).
    pub path_and_query: String,
    /// The connection's extensions (a websocket upgrade takes the
    /// connection from them).
    pub extensions: http::Extensions,
}

impl Request {
    /// A path parameter by name (empty if the route has none by that name).
    pub fn param(&self, name: &str) -> &str {
        self.path_params
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The first value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeated query parameter.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Decodes the body as JSON, field names matched without regard to
    /// case as Go does; a failure is a 400 that starts with `context`, as
    /// Nomad words it.
    pub fn json_body<T: DeserializeOwned>(&self, context: &str) -> Result<T, ApiError> {
        crate::decode::from_slice(&self.body)
            .map_err(|error| ApiError::bad_request(format!("{context}: {error}")))
    }

    /// Refuses the request unless the caller's token grants `capability`.
    pub fn require(&self, capability: Capability) -> Result<(), ApiError> {
        if self.identity.acl.allows(capability) {
            Ok(())
        } else {
            Err(ApiError::permission_denied())
        }
    }

    /// The server role, for endpoints that only run on servers.
    pub fn server(&self) -> Result<&Arc<caravan_server::Server>, ApiError> {
        self.ctx
            .server
            .as_ref()
            .ok_or_else(|| ApiError::invalid_method(StatusCode::NOT_IMPLEMENTED))
    }
}

/// The common path of every API request.
pub async fn dispatch(
    route: Arc<Route>,
    ctx: Arc<AgentContext>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let is_query = parts.method == Method::GET;
    let pairs: Vec<(String, String)> =
        match serde_urlencoded::from_str(parts.uri.query().unwrap_or("")) {
            Ok(pairs) => pairs,
            Err(error) => {
                let error = ApiError::bad_request(format!("invalid query string: {error}"));
                return render_error(&ctx, error, false, is_query);
            }
        };
    let pretty = pairs
        .iter()
        .any(|(key, value)| key == "pretty" && value != "0");
    let Some(endpoint) = route
        .endpoints
        .iter()
        .find(|endpoint| endpoint.methods.contains(&parts.method))
    else {
        let error = ApiError::invalid_method(route.wrong_method);
        return render_error(&ctx, error, pretty, is_query);
    };
    let query = match QueryOptions::parse(&pairs) {
        Ok(query) => query,
        Err(error) => return render_error(&ctx, error, pretty, is_query),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            let error = ApiError::bad_request(format!("failed to read request body: {error}"));
            return render_error(&ctx, error, pretty, is_query);
        }
    };
    match plan(
        &ctx,
        endpoint.consistency,
        &query,
        forwarded_hops(&parts.headers),
    )
    .await
    {
        Ok(Plan::Here) => {}
        Ok(Plan::Forward(targets)) => return forward(&ctx, &targets, &parts, body, &query).await,
        Err(error) => return render_error(&ctx, error, pretty, is_query),
    }
    let identity = match endpoint.acl {
        Acl::None => Identity {
            acl: caravan_acl::AclSet::default(),
            token: None,
            acls_enabled: ctx.config.acl.enabled,
        },
        Acl::Require(capability) => match acl_check::resolve(&ctx, &parts.headers).await {
            Ok(identity) if identity.acl.allows(capability) => identity,
            Ok(_) => return render_error(&ctx, ApiError::permission_denied(), pretty, is_query),
            Err(error) => return render_error(&ctx, error, pretty, is_query),
        },
        Acl::InHandler => match acl_check::resolve(&ctx, &parts.headers).await {
            Ok(identity) => identity,
            Err(error) => return render_error(&ctx, error, pretty, is_query),
        },
    };
    let path_params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let request = Request {
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        ctx: Arc::clone(&ctx),
        method: parts.method.clone(),
        path_params,
        pairs,
        query,
        headers: parts.headers,
        body,
        identity,
        extensions: parts.extensions,
    };
    match (endpoint.handler)(request).await {
        Ok(reply) => render_reply(&ctx, reply, pretty, is_query),
        Err(error) => render_error(&ctx, error, pretty, is_query),
    }
}
