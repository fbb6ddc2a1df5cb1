//! The jobs API pages: `/v1/jobs`, `/v1/job/:id`, `/v1/validate/job`,
//! `/v1/jobs/parse`. One module per page; this one holds the route table
//! and what the pages share (the namespace a request is for, and the
//! namespace capability checks, which Nomad makes in the object's
//! namespace rather than per route).

mod validate;

use http::StatusCode;

use crate::error::ApiError;
use crate::route::{endpoint, Acl, Consistency, Request, Route, PUT_POST};

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![route(
        "/v1/validate/job",
        vec![endpoint(
            PUT_POST,
            Acl::InHandler,
            Consistency::AnyServer,
            validate::validate_job,
        )],
    )]
}

/// Refuses the request unless the caller may `capability` in `namespace`
/// (403 `Permission denied`, as Nomad).
pub(crate) fn require_namespace(
    request: &Request,
    namespace: &str,
    capability: &str,
) -> Result<(), ApiError> {
    if request.identity.acl.allows_namespace(namespace, capability) {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

/// Nomad's 400 for a write whose body is empty.
pub(crate) fn require_body(request: &Request) -> Result<(), ApiError> {
    if request.body.is_empty() {
        Err(ApiError::bad_request("Request body is empty"))
    } else {
        Ok(())
    }
}
