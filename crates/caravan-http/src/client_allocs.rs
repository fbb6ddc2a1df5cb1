//! The client allocation endpoints (scheduling.md §10):
//! `/v1/client/allocation/:id/{stats,signal,restart,gc}`, and the node's
//! own `/v1/client/stats` and `/v1/client/gc`.
//!
//! The agent whose client holds the allocation (or is the node asked for)
//! acts; any other agent relays the request there
//! ([`crate::client_route`]), after checking the caller's token where it
//! knows the allocation's namespace (the node's agent checks again).

use caravan_client::runner::lifecycle::LifecycleError;
use caravan_client::Client;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client_route::{node_holder, permitted_holder, relay, AllocHolder, NodeHolder};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{
    endpoint, Acl, Consistency, Request, Route, GET, NODE_READ, NODE_WRITE, PUT_POST,
};

/// Nomad answers these on any method.
const ANY: &[Method] = &[Method::GET, Method::PUT, Method::POST, Method::DELETE];

pub fn routes() -> Vec<Route> {
    let route = |path, endpoint| Route {
        path,
        endpoints: vec![endpoint],
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/client/allocation/{id}/stats",
            endpoint(GET, Acl::InHandler, Consistency::Local, stats),
        ),
        route(
            "/v1/client/allocation/{id}/signal",
            endpoint(PUT_POST, Acl::InHandler, Consistency::Local, signal),
        ),
        route(
            "/v1/client/allocation/{id}/restart",
            endpoint(ANY, Acl::InHandler, Consistency::Local, restart),
        ),
        route(
            "/v1/client/allocation/{id}/gc",
            endpoint(ANY, Acl::InHandler, Consistency::Local, collect),
        ),
        route(
            "/v1/client/stats",
            endpoint(GET, NODE_READ, Consistency::Local, host_stats),
        ),
        route(
            "/v1/client/gc",
            endpoint(ANY, NODE_WRITE, Consistency::Local, collect_node),
        ),
    ]
}

const READ_JOB: &[&str] = &["read-job"];
const ALLOC_LIFECYCLE: &[&str] = &["alloc-lifecycle"];
const GC_ALLOC: &[&str] = &["submit-job", "gc-allocation"];

/// Who answers, once the caller may act there.
fn target(request: &Request, capabilities: &[&str]) -> Result<AllocHolder, ApiError> {
    permitted_holder(request, request.param("id"), capabilities)
}

/// The status of a refused request: Nomad's 404 for an unknown
/// allocation, 400 for what the caller got wrong, 500 otherwise (as
/// Nomad, for a task that is unknown or not running).
pub(crate) fn lifecycle_error(error: LifecycleError) -> ApiError {
    let status = match &error {
        LifecycleError::UnknownAlloc(_) => StatusCode::NOT_FOUND,
        LifecycleError::InvalidSignal(_) | LifecycleError::NotTerminal(_) => {
            StatusCode::BAD_REQUEST
        }
        LifecycleError::TaskNotFound
        | LifecycleError::TaskNotRunning
        | LifecycleError::TaskNameWithAllTasks
        | LifecycleError::Driver(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.to_string())
}

/// The allocations of this agent's client; before they are running, none.
fn manager(
    client: &Client,
    alloc_id: &str,
) -> Result<std::sync::Arc<caravan_client::runner::AllocManager>, ApiError> {
    client
        .allocations()
        .cloned()
        .ok_or_else(|| lifecycle_error(LifecycleError::UnknownAlloc(alloc_id.to_string())))
}

/// Nomad's answer to a lifecycle write (its `GenericResponse`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Done {
    index: u64,
}

fn done() -> Result<Reply, ApiError> {
    Reply::json(&Done { index: 0 })
}

async fn stats(request: Request) -> Result<Reply, ApiError> {
    let (alloc_id, client) = match target(&request, READ_JOB)? {
        AllocHolder::Remote(base) => return relay(&request, &base).await,
        AllocHolder::Local(view, client) => (view.alloc.id, client),
    };
    let task = request.query_value("task").unwrap_or_default();
    let usage = manager(&client, &alloc_id)?
        .stats(&alloc_id, task)
        .await
        .map_err(lifecycle_error)?;
    Reply::json(&usage)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SignalBody {
    signal: String,
    task: String,
}

async fn signal(request: Request) -> Result<Reply, ApiError> {
    let (alloc_id, client) = match target(&request, ALLOC_LIFECYCLE)? {
        AllocHolder::Remote(base) => return relay(&request, &base).await,
        AllocHolder::Local(view, client) => (view.alloc.id, client),
    };
    let body: SignalBody = request.json_body("Failed to decode request body")?;
    manager(&client, &alloc_id)?
        .signal(&alloc_id, &body.task, &body.signal)
        .await
        .map_err(lifecycle_error)?;
    done()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RestartBody {
    task_name: String,
    all_tasks: bool,
}

async fn restart(request: Request) -> Result<Reply, ApiError> {
    let (alloc_id, client) = match target(&request, ALLOC_LIFECYCLE)? {
        AllocHolder::Remote(base) => return relay(&request, &base).await,
        AllocHolder::Local(view, client) => (view.alloc.id, client),
    };
    // The CLI sends a body; other callers may send none (every running
    // task, then).
    let body: RestartBody = match request.body.iter().all(u8::is_ascii_whitespace) {
        true => RestartBody::default(),
        false => request.json_body("Failed to decode request body")?,
    };
    manager(&client, &alloc_id)?
        .restart(&alloc_id, &body.task_name, body.all_tasks)
        .await
        .map_err(lifecycle_error)?;
    done()
}

async fn collect(request: Request) -> Result<Reply, ApiError> {
    let (alloc_id, client) = match target(&request, GC_ALLOC)? {
        AllocHolder::Remote(base) => return relay(&request, &base).await,
        AllocHolder::Local(view, client) => (view.alloc.id, client),
    };
    manager(&client, &alloc_id)?
        .collect(&alloc_id)
        .await
        .map_err(lifecycle_error)?;
    done()
}

async fn host_stats(request: Request) -> Result<Reply, ApiError> {
    match node_holder(&request)? {
        NodeHolder::Remote(base) => relay(&request, &base).await,
        NodeHolder::Local(client) => Reply::json(&client.host_stats().await),
    }
}

async fn collect_node(request: Request) -> Result<Reply, ApiError> {
    match node_holder(&request)? {
        NodeHolder::Remote(base) => relay(&request, &base).await,
        NodeHolder::Local(client) => {
            if let Some(manager) = client.allocations() {
                manager.collect_all().await;
            }
            done()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_nomads_statuses() {
        let status = |error| lifecycle_error(error).status;
        assert_eq!(
            status(LifecycleError::UnknownAlloc("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(LifecycleError::InvalidSignal("SIGNOPE".into())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(LifecycleError::TaskNotRunning),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            lifecycle_error(LifecycleError::InvalidSignal("SIGNOPE".into())).message,
            "invalid signal \"SIGNOPE\""
        );
    }

    #[test]
    fn bodies_decode_as_the_cli_sends_them() {
        let signal: SignalBody =
            crate::decode::from_slice(br#"{"Signal":"SIGUSR1","Task":"web"}"#).unwrap();
        assert_eq!(
            (signal.signal.as_str(), signal.task.as_str()),
            ("SIGUSR1", "web")
        );
        let restart: RestartBody =
            crate::decode::from_slice(br#"{"TaskName":"","AllTasks":true}"#).unwrap();
        assert!(restart.all_tasks && restart.task_name.is_empty());
    }
}
