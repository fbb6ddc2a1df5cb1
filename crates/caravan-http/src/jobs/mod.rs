//! The jobs API pages: `/v1/jobs`, `/v1/job/:id[/…]`, `/v1/validate/job`,
//! `/v1/jobs/parse`. One module per page; this one holds the route table
//! and what the pages share: the namespace a request is for, and the
//! namespace capability checks, which Nomad makes in the object's
//! namespace rather than per route (so every route here is
//! [`Acl::InHandler`]).

mod job;
mod list;
mod parse;
mod register;
mod validate;

use caravan_acl::AclSet;
use caravan_api_types::job::DEFAULT_NAMESPACE;
use caravan_state::Command;
use http::StatusCode;

use crate::error::ApiError;
use crate::operator::server_error;
use crate::route::{endpoint, Acl, Consistency, Request, Route, DELETE, GET, PUT_POST};

/// `?namespace=*`: every namespace the caller may read (list endpoints only).
pub(crate) const ALL_NAMESPACES: &str = "*";

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/jobs",
            vec![
                endpoint(
                    GET,
                    Acl::InHandler,
                    Consistency::LeaderUnlessStale,
                    list::list,
                ),
                endpoint(PUT_POST, Acl::InHandler, Consistency::Leader, |request| {
                    register::register(request, None)
                }),
            ],
        ),
        route(
            "/v1/job/{*rest}",
            vec![
                endpoint(
                    GET,
                    Acl::InHandler,
                    Consistency::LeaderUnlessStale,
                    job::job,
                ),
                endpoint(PUT_POST, Acl::InHandler, Consistency::Leader, job::job),
                endpoint(DELETE, Acl::InHandler, Consistency::Leader, job::job),
            ],
        ),
        route(
            "/v1/jobs/parse",
            vec![endpoint(
                PUT_POST,
                Acl::InHandler,
                Consistency::Local,
                parse::parse_job,
            )],
        ),
        route(
            "/v1/validate/job",
            vec![endpoint(
                PUT_POST,
                Acl::InHandler,
                Consistency::AnyServer,
                validate::validate_job,
            )],
        ),
    ]
}

/// The namespace of a read or a write by ID: `?namespace=`, else `default`.
pub(crate) fn query_namespace(request: &Request) -> String {
    request
        .query
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// Whether a row of `namespace` belongs in a list for `asked` (a namespace
/// or `*`) that needs `capability`.
pub(crate) fn visible(acl: &AclSet, asked: &str, namespace: &str, capability: &str) -> bool {
    (asked == ALL_NAMESPACES || asked == namespace) && acl.allows_namespace(namespace, capability)
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

/// A boolean query parameter parsed as Go's `strconv.ParseBool`, with
/// Nomad's text for a bad one.
pub(crate) fn go_bool(request: &Request, name: &str) -> Result<Option<bool>, ApiError> {
    match request.query_value(name) {
        None | Some("") => Ok(None),
        Some(value) => caravan_config::flags::parse_go_bool(value)
            .map(Some)
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "Failed to parse value of {name:?} ({value}) as a bool: strconv.ParseBool: parsing {value:?}: invalid syntax"
                ))
            }),
    }
}

/// Now, as the UnixNano Nomad stamps on jobs, evals and allocations.
pub(crate) fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Applies a job-side write on the leader; an `EnforceIndex` conflict is a
/// 409 with Nomad's text, any other refusal a 400.
pub(crate) async fn apply_write(request: &Request, command: Command) -> Result<u64, ApiError> {
    let write = request
        .server()?
        .apply(command)
        .await
        .map_err(server_error)?;
    register::write_result(write.result, write.index)
}
