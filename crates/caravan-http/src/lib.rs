//! Caravan's HTTP API: Nomad's `/v1/` routes.
//!
//! Every route is declared in a table ([`routes`]) with, per method, the
//! ACL capability it needs and where it must run; [`route::dispatch`] is the
//! single path every request takes through query parsing, region checks,
//! leader forwarding, the handler, and Nomad's headers and errors.

pub mod agent;
mod agent_config;
pub mod blocking;
pub mod context;
pub mod error;
mod forward;
pub mod operator;
pub mod query;
pub mod regions;
mod render;
pub mod reply;
pub mod route;
pub mod status;
pub mod version;

use std::sync::Arc;

use axum::routing::any;
use axum::Router;

pub use context::{AdvertisedAddresses, AgentContext};
pub use forward::FORWARDED_HEADER;
pub use route::{Acl, Consistency, Route};

/// Every API route, one module per API page.
pub fn routes() -> Vec<Route> {
    [
        agent::routes(),
        status::routes(),
        regions::routes(),
        operator::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The API as an axum router; unknown paths answer 404 with an empty body.
pub fn api_router(ctx: Arc<AgentContext>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let path = route.path;
        let route = Arc::new(route);
        let ctx = Arc::clone(&ctx);
        router = router.route(
            path,
            any(move |request: axum::extract::Request| {
                route::dispatch(Arc::clone(&route), Arc::clone(&ctx), request)
            }),
        );
    }
    router.fallback(|| async { http::StatusCode::NOT_FOUND })
}

/// Collapses repeated slashes (`//v1/agent/self`, which python-nomad sends
/// when its address ends in a slash) before routing.
pub fn normalize_path(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    if !path.contains("//") {
        return request;
    }
    let mut collapsed = String::with_capacity(path.len());
    for character in path.chars() {
        if !(character == '/' && collapsed.ends_with('/')) {
            collapsed.push(character);
        }
    }
    let rebuilt = match request.uri().query() {
        Some(query) => format!("{collapsed}?{query}"),
        None => collapsed,
    };
    if let Ok(uri) = rebuilt.parse() {
        *request.uri_mut() = uri;
    }
    request
}
