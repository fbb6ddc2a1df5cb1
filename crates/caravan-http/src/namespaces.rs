//! `/v1/namespaces` and `/v1/namespace/:name`: listing, reading, writing
//! and deleting namespaces, as Nomad's namespace endpoints.
//!
//! Anyone may list, seeing only the namespaces their token grants
//! something in; reading one needs the same; writing and deleting need a
//! management token. Nomad's RPC refusals (an invalid namespace, deleting
//! `default` or a namespace with live work) are 500s with its texts.

use caravan_api_types::namespace::Namespace;
use caravan_state::{Command, CommandResult, Table};
use http::StatusCode;

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::operator::server_error;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, DELETE, GET, MANAGEMENT, PUT_POST};

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/v1/namespaces",
            endpoints: vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                list,
            )],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/namespace",
            endpoints: vec![endpoint(PUT_POST, MANAGEMENT, Consistency::Leader, create)],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/namespace/{name}",
            endpoints: vec![
                endpoint(GET, Acl::InHandler, Consistency::LeaderUnlessStale, get),
                endpoint(PUT_POST, MANAGEMENT, Consistency::Leader, update),
                endpoint(DELETE, MANAGEMENT, Consistency::Leader, delete),
            ],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
    ]
}

/// The caller may see `name` (ACLs off, management, or any capability).
fn visible(request: &Request, name: &str) -> bool {
    !request.identity.acls_enabled || request.identity.acl.allows_any_in_namespace(name)
}

async fn list(request: Request) -> Result<Reply, ApiError> {
    let prefix = request.query.prefix.clone();
    let identity = request.identity.clone();
    let (index, namespaces) = blocking_query(&request, &[Table::Namespaces.into()], |state| {
        let namespaces: Vec<_> = state
            .namespaces()
            .into_iter()
            .filter(|namespace| namespace.name.starts_with(&prefix))
            .filter(|namespace| {
                !identity.acls_enabled || identity.acl.allows_any_in_namespace(&namespace.name)
            })
            .collect();
        Ok((state.table_index(Table::Namespaces).max(1), namespaces))
    })
    .await?;
    Ok(Reply::json(&namespaces)?.query_index(index))
}

async fn get(request: Request) -> Result<Reply, ApiError> {
    let name = request.param("name").to_string();
    if !visible(&request, &name) {
        return Err(ApiError::permission_denied());
    }
    let (index, namespace) = blocking_query(&request, &[Table::Namespaces.into()], |state| {
        let namespace = state.namespace(&name);
        // The namespace's own index, as Nomad answers; the table's when
        // it does not exist.
        let index = namespace
            .as_ref()
            .map_or(state.table_index(Table::Namespaces), |namespace| {
                namespace.modify_index
            });
        Ok((index.max(1), namespace))
    })
    .await?;
    let namespace = namespace.ok_or_else(|| ApiError::not_found("Namespace not found"))?;
    Ok(Reply::json(&*namespace)?.query_index(index))
}

/// `PUT /v1/namespace`: the name is the body's.
async fn create(request: Request) -> Result<Reply, ApiError> {
    let namespace: Namespace = request.json_body("Failed to decode namespace")?;
    upsert(&request, namespace).await
}

/// `PUT /v1/namespace/:name`: the body's name must be the path's.
async fn update(request: Request) -> Result<Reply, ApiError> {
    let namespace: Namespace = request.json_body("Failed to decode namespace")?;
    if namespace.name != request.param("name") {
        return Err(ApiError::bad_request(
            "Namespace name does not match request path",
        ));
    }
    upsert(&request, namespace).await
}

async fn upsert(request: &Request, namespace: Namespace) -> Result<Reply, ApiError> {
    // Checked before Raft so the caller gets every problem at once; the
    // state machine checks again.
    let problems = namespace.problems();
    if !problems.is_empty() {
        return Err(ApiError::internal(format!(
            "Invalid namespace {:?}: {}",
            namespace.name,
            caravan_api_types::job::validate::multierror(&problems)
        )));
    }
    let index = write(
        request,
        Command::NamespaceUpsert {
            namespaces: vec![namespace],
        },
    )
    .await?;
    Ok(Reply::empty().write_index(index))
}

async fn delete(request: Request) -> Result<Reply, ApiError> {
    let name = request.param("name").to_string();
    let index = write(
        &request,
        Command::NamespaceDelete {
            names: vec![name],
            region: request.ctx.config.region.clone(),
        },
    )
    .await?;
    Ok(Reply::empty().write_index(index))
}

/// A namespace write; a refusal is Nomad's RPC error, a 500.
async fn write(request: &Request, command: Command) -> Result<u64, ApiError> {
    let write = request
        .server()?
        .apply(command)
        .await
        .map_err(server_error)?;
    match write.result {
        CommandResult::Done | CommandResult::Cas(_) => Ok(write.index),
        CommandResult::Refused(text) | CommandResult::Conflict(text) => {
            Err(ApiError::internal(text))
        }
    }
}
