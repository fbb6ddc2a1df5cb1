//! `/v1/regions`.

use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

pub fn routes() -> Vec<Route> {
    vec![Route {
        path: "/v1/regions",
        endpoints: vec![endpoint(GET, Acl::None, Consistency::Local, regions)],
        wrong_method: http::StatusCode::METHOD_NOT_ALLOWED,
    }]
}

/// The regions with at least one known server, sorted. Until servers of
/// other regions are found by gossip that is this agent's own region.
async fn regions(request: Request) -> Result<Reply, ApiError> {
    let regions = vec![request.ctx.config.region.clone()];
    Reply::json(&regions)
}
