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

/// The regions with at least one alive server known by gossip, sorted. A
/// client-only agent knows its own region.
async fn regions(request: Request) -> Result<Reply, ApiError> {
    let mut regions = match &request.ctx.gossip {
        Some(gossip) => gossip.regions(),
        None => Vec::new(),
    };
    if !regions.contains(&request.ctx.config.region) {
        regions.push(request.ctx.config.region.clone());
        regions.sort();
    }
    Reply::json(&regions)
}
