//! Caravan's HTTP API: Nomad's `/v1/` routes.
//!
//! Every route is declared in a table ([`routes`]) with, per method, the
//! ACL capability it needs and where it must run; [`route::dispatch`] is the
//! single path every request takes through query parsing, region checks,
//! leader forwarding, the handler, and Nomad's headers and errors.

pub mod acl;
mod acl_cache;
mod acl_check;
pub mod agent;
mod agent_config;
pub mod allocs;
pub mod blocking;
mod client_allocs;
mod client_exec;
mod client_fs;
mod client_fs_stream;
pub mod client_route;
pub mod consistency;
pub mod context;
mod decode;
pub mod error;
pub mod evals;
mod forward;
pub mod jobs;
pub mod keyring;
pub mod metrics;
pub mod namespaces;
mod node_stubs;
pub mod nodes;
pub mod operator;
mod paginate;
pub mod query;
pub mod regions;
mod render;
pub mod reply;
pub mod route;
pub mod status;
pub mod system;
pub mod version;

use std::sync::Arc;

use axum::routing::any;
use axum::Router;

pub use acl_check::AclCache;
pub use context::{AdvertisedAddresses, AgentContext, ListCache};
pub use forward::FORWARDED_HEADER;
pub use node_stubs::NodeStubCache;
pub use route::{Acl, Consistency, Route};

/// Every API route, one module per API page.
pub fn routes() -> Vec<Route> {
    [
        acl::routes(),
        agent::routes(),
        keyring::routes(),
        status::routes(),
        regions::routes(),
        nodes::routes(),
        jobs::routes(),
        allocs::routes(),
        client_allocs::routes(),
        client_exec::routes(),
        client_fs::routes(),
        evals::routes(),
        operator::routes(),
        system::routes(),
        namespaces::routes(),
        metrics::routes(),
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

#[cfg(test)]
mod route_table_tests {
    use super::*;
    use caravan_acl::Capability::*;
    use http::Method;

    /// Every (method, path) with the requirement Nomad's API pages give it.
    /// A route added without an entry here fails this test, so each new
    /// route's ACL is decided on purpose.
    fn expected() -> Vec<(&'static str, &'static str, Acl)> {
        use Acl::{InHandler, None as Open, Require};
        vec![
            ("GET", "/v1/agent/self", Require(AgentRead)),
            ("GET", "/v1/agent/members", Require(NodeRead)),
            ("GET", "/v1/agent/health", Open),
            ("PUT", "/v1/agent/join", Require(AgentWrite)),
            ("POST", "/v1/agent/join", Require(AgentWrite)),
            ("PUT", "/v1/agent/force-leave", Require(AgentWrite)),
            ("POST", "/v1/agent/force-leave", Require(AgentWrite)),
            ("GET", "/v1/agent/servers", Require(AgentRead)),
            ("PUT", "/v1/agent/servers", Require(AgentWrite)),
            ("POST", "/v1/agent/servers", Require(AgentWrite)),
            ("GET", "/v1/agent/keyring/list", Require(AgentWrite)),
            ("PUT", "/v1/agent/keyring/install", Require(AgentWrite)),
            ("POST", "/v1/agent/keyring/install", Require(AgentWrite)),
            ("PUT", "/v1/agent/keyring/use", Require(AgentWrite)),
            ("POST", "/v1/agent/keyring/use", Require(AgentWrite)),
            ("PUT", "/v1/agent/keyring/remove", Require(AgentWrite)),
            ("POST", "/v1/agent/keyring/remove", Require(AgentWrite)),
            ("GET", "/v1/status/leader", Open),
            ("GET", "/v1/status/peers", Open),
            ("GET", "/v1/regions", Open),
            (
                "GET",
                "/v1/operator/autopilot/health",
                Require(OperatorRead),
            ),
            ("DELETE", "/v1/operator/raft/peer", Require(Management)),
            (
                "PUT",
                "/v1/operator/raft/transfer-leadership",
                Require(Management),
            ),
            (
                "POST",
                "/v1/operator/raft/transfer-leadership",
                Require(Management),
            ),
            (
                "GET",
                "/v1/operator/raft/configuration",
                Require(Management),
            ),
            (
                "GET",
                "/v1/operator/autopilot/configuration",
                Require(OperatorRead),
            ),
            (
                "PUT",
                "/v1/operator/autopilot/configuration",
                Require(OperatorWrite),
            ),
            (
                "GET",
                "/v1/operator/scheduler/configuration",
                Require(OperatorRead),
            ),
            (
                "PUT",
                "/v1/operator/scheduler/configuration",
                Require(OperatorWrite),
            ),
            (
                "POST",
                "/v1/operator/scheduler/configuration",
                Require(OperatorWrite),
            ),
            ("PUT", "/v1/acl/bootstrap", Open),
            ("POST", "/v1/acl/bootstrap", Open),
            ("GET", "/v1/acl/policies", InHandler),
            ("GET", "/v1/acl/policy/{name}", InHandler),
            ("PUT", "/v1/acl/policy/{name}", Require(Management)),
            ("POST", "/v1/acl/policy/{name}", Require(Management)),
            ("DELETE", "/v1/acl/policy/{name}", Require(Management)),
            ("GET", "/v1/acl/tokens", Require(Management)),
            ("PUT", "/v1/acl/token", Require(Management)),
            ("POST", "/v1/acl/token", Require(Management)),
            ("GET", "/v1/acl/token/self", InHandler),
            ("GET", "/v1/nodes", Require(NodeRead)),
            ("GET", "/v1/node/{id}", Require(NodeRead)),
            ("GET", "/v1/node/{id}/allocations", Require(NodeRead)),
            ("PUT", "/v1/node/{id}/evaluate", Require(NodeWrite)),
            ("POST", "/v1/node/{id}/evaluate", Require(NodeWrite)),
            ("PUT", "/v1/node/{id}/drain", Require(NodeWrite)),
            ("POST", "/v1/node/{id}/drain", Require(NodeWrite)),
            ("PUT", "/v1/node/{id}/purge", Require(NodeWrite)),
            ("POST", "/v1/node/{id}/purge", Require(NodeWrite)),
            ("PUT", "/v1/node/{id}/eligibility", Require(NodeWrite)),
            ("POST", "/v1/node/{id}/eligibility", Require(NodeWrite)),
            ("GET", "/v1/acl/token/{accessor}", InHandler),
            ("PUT", "/v1/acl/token/{accessor}", Require(Management)),
            ("POST", "/v1/acl/token/{accessor}", Require(Management)),
            ("DELETE", "/v1/acl/token/{accessor}", Require(Management)),
            // The jobs side checks namespace capabilities in the namespace
            // of the object (jobs/mod.rs), so its routes decide in the
            // handler; crates/caravan/tests/jobs_acl.rs covers each one.
            ("GET", "/v1/jobs", InHandler),
            ("PUT", "/v1/jobs", InHandler),
            ("POST", "/v1/jobs", InHandler),
            ("PUT", "/v1/jobs/parse", InHandler),
            ("POST", "/v1/jobs/parse", InHandler),
            ("GET", "/v1/job/{*rest}", InHandler),
            ("PUT", "/v1/job/{*rest}", InHandler),
            ("POST", "/v1/job/{*rest}", InHandler),
            ("DELETE", "/v1/job/{*rest}", InHandler),
            ("PUT", "/v1/validate/job", InHandler),
            ("POST", "/v1/validate/job", InHandler),
            ("GET", "/v1/allocations", InHandler),
            ("GET", "/v1/allocation/{id}", InHandler),
            ("PUT", "/v1/allocation/{id}/stop", InHandler),
            ("POST", "/v1/allocation/{id}/stop", InHandler),
            ("GET", "/v1/evaluations", InHandler),
            ("DELETE", "/v1/evaluations", Require(Management)),
            ("GET", "/v1/evaluation/{id}", InHandler),
            ("GET", "/v1/evaluation/{id}/allocations", InHandler),
            // The client allocation endpoints check read-job,
            // alloc-lifecycle or submit-job in the allocation's namespace,
            // known only once it is found; the node's own need node rights.
            ("GET", "/v1/client/allocation/{id}/exec", InHandler),
            ("GET", "/v1/client/allocation/{id}/stats", InHandler),
            ("PUT", "/v1/client/allocation/{id}/signal", InHandler),
            ("POST", "/v1/client/allocation/{id}/signal", InHandler),
            ("GET", "/v1/client/allocation/{id}/restart", InHandler),
            ("PUT", "/v1/client/allocation/{id}/restart", InHandler),
            ("POST", "/v1/client/allocation/{id}/restart", InHandler),
            ("DELETE", "/v1/client/allocation/{id}/restart", InHandler),
            ("GET", "/v1/client/allocation/{id}/gc", InHandler),
            ("PUT", "/v1/client/allocation/{id}/gc", InHandler),
            ("POST", "/v1/client/allocation/{id}/gc", InHandler),
            ("DELETE", "/v1/client/allocation/{id}/gc", InHandler),
            ("GET", "/v1/client/stats", Require(NodeRead)),
            ("GET", "/v1/client/gc", Require(NodeWrite)),
            ("PUT", "/v1/client/gc", Require(NodeWrite)),
            ("POST", "/v1/client/gc", Require(NodeWrite)),
            ("DELETE", "/v1/client/gc", Require(NodeWrite)),
            // The client fs endpoints check read-fs (read-logs for logs)
            // in the allocation's namespace, known only once it is found.
            ("GET", "/v1/client/fs/ls/{alloc}", InHandler),
            ("GET", "/v1/client/fs/stat/{alloc}", InHandler),
            ("GET", "/v1/client/fs/cat/{alloc}", InHandler),
            ("GET", "/v1/client/fs/readat/{alloc}", InHandler),
            ("GET", "/v1/client/fs/stream/{alloc}", InHandler),
            ("GET", "/v1/client/fs/logs/{alloc}", InHandler),
            ("GET", "/v1/client/fs/{*rest}", InHandler),
            ("PUT", "/v1/system/gc", Require(Management)),
            ("PUT", "/v1/system/reconcile/summaries", Require(Management)),
            // Listing and reading show only the namespaces the token has
            // rights in (Nomad's AllowNamespace), decided per namespace.
            ("GET", "/v1/namespaces", InHandler),
            ("GET", "/v1/namespace/{name}", InHandler),
            ("PUT", "/v1/namespace", Require(Management)),
            ("POST", "/v1/namespace", Require(Management)),
            ("PUT", "/v1/namespace/{name}", Require(Management)),
            ("POST", "/v1/namespace/{name}", Require(Management)),
            ("DELETE", "/v1/namespace/{name}", Require(Management)),
            // Nomad's metrics need no token (scrapers send none).
            ("GET", "/v1/metrics", Open),
        ]
    }

    #[test]
    fn every_route_declares_the_acl_nomad_documents() {
        let mut declared: Vec<(String, String, Acl)> = Vec::new();
        for route in routes() {
            for endpoint in &route.endpoints {
                for method in endpoint.methods {
                    declared.push((method.to_string(), route.path.to_string(), endpoint.acl));
                }
            }
        }
        let expected = expected();
        for (method, path, acl) in &declared {
            let entry = expected
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .unwrap_or_else(|| panic!("{method} {path} has no expected ACL entry"));
            assert_eq!(*acl, entry.2, "{method} {path}");
        }
        for (method, path, _) in &expected {
            assert!(
                declared.iter().any(|(m, p, _)| m == method && p == path),
                "{method} {path} is expected but not routed"
            );
        }
        // No method appears twice on one path.
        for route in routes() {
            let mut methods: Vec<&Method> = route
                .endpoints
                .iter()
                .flat_map(|e| e.methods.iter())
                .collect();
            let total = methods.len();
            methods.sort_by_key(|m| m.as_str().to_string());
            methods.dedup();
            assert_eq!(methods.len(), total, "{} repeats a method", route.path);
        }
    }
}
