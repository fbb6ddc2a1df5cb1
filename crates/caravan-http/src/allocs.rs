//! The allocations API page: `/v1/allocations`, `/v1/allocation/:id`,
//! `/v1/allocation/:id/stop`.

use std::sync::Arc;

use caravan_api_types::alloc::{AllocListStub, Allocation, DesiredTransition};
use caravan_api_types::eval::{Evaluation, EVAL_STATUS_PENDING, TRIGGER_ALLOC_STOP};
use caravan_state::job_commands::AllocsTransition;
use caravan_state::{Command, Table, WatchKey};
use http::StatusCode;
use serde::Serialize;

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::jobs::{apply_write, go_bool, now_nanos, query_namespace, visible};
use crate::paginate::{compile_filter, paginate};
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET, PUT_POST};

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/allocations",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                list,
            )],
        ),
        route(
            "/v1/allocation/{id}",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                get,
            )],
        ),
        route(
            "/v1/allocation/{id}/stop",
            vec![endpoint(
                PUT_POST,
                Acl::InHandler,
                Consistency::Leader,
                stop,
            )],
        ),
    ]
}

/// A full allocation ID from the path, with Nomad's text for anything else.
pub(crate) fn alloc_id(request: &Request) -> Result<String, ApiError> {
    let id = request.param("id");
    if id.len() != 36 || uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(
            "alloc lookup failed: index error: UUID must be 36 characters",
        ));
    }
    Ok(id.to_string())
}

/// `?resources` (default false) and `?task_states` (default true).
pub(crate) fn stub_fields(request: &Request) -> Result<(bool, bool), ApiError> {
    Ok((
        go_bool(request, "resources")?.unwrap_or(false),
        go_bool(request, "task_states")?.unwrap_or(true),
    ))
}

/// Stubs as the list endpoints show them: each task event's
/// `DisplayMessage` filled in when empty (jobs-api.md §3.6).
pub(crate) fn list_stub(alloc: &Allocation, resources: bool, task_states: bool) -> AllocListStub {
    let mut stub = alloc.stub(resources, task_states);
    for state in stub
        .task_states
        .iter_mut()
        .flat_map(|states| states.values_mut())
    {
        for event in state.events.iter_mut().flatten() {
            if event.display_message.is_empty() {
                event.display_message = event.message.clone();
            }
        }
    }
    stub
}

async fn list(request: Request) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    let (resources, task_states) = stub_fields(&request)?;
    let filter = compile_filter(&request.query)?;
    let query = request.query.clone();
    let acl = request.identity.acl.clone();
    let (index, (stubs, next_token)) = blocking_query(&request, &[Table::Allocs.into()], |state| {
        let rows: Vec<(String, &Allocation)> = state
            .allocs()
            .filter(|alloc| alloc.id.starts_with(&query.prefix))
            .filter(|alloc| visible(&acl, &namespace, &alloc.namespace, "read-job"))
            .map(|alloc| {
                let token = if query.prefix.is_empty() {
                    format!("{}.{}", alloc.create_index, alloc.id)
                } else {
                    alloc.id.clone()
                };
                (token, alloc.as_ref())
            })
            .collect();
        let mut rows = rows;
        if query.prefix.is_empty() {
            rows.sort_by_key(|(_, alloc)| (alloc.create_index, alloc.id.clone()));
        }
        if query.reverse {
            rows.reverse();
        }
        let page = paginate(
            rows.iter(),
            &query,
            filter.as_ref(),
            |row| row.1.stub(resources, task_states),
            |row| &row.0,
        )?;
        let stubs: Vec<AllocListStub> = page
            .items
            .into_iter()
            .map(|(_, alloc)| list_stub(alloc, resources, task_states))
            .collect();
        Ok((
            state.table_index(Table::Allocs).max(1),
            (stubs, page.next_token),
        ))
    })
    .await?;
    Ok(Reply::json(&stubs)?
        .query_index(index)
        .with_next_token(next_token))
}

async fn get(request: Request) -> Result<Reply, ApiError> {
    let id = alloc_id(&request)?;
    let watch = [WatchKey::Row(Table::Allocs, id.clone())];
    let (index, alloc) = blocking_query(&request, &watch, |state| {
        Ok(match state.alloc(&id) {
            Some(alloc) => (alloc.modify_index, Some(Arc::clone(alloc))),
            None => (state.table_index(Table::Allocs).max(1), None),
        })
    })
    .await?;
    let alloc = alloc.ok_or_else(|| ApiError::not_found("alloc not found"))?;
    if !request
        .identity
        .acl
        .allows_namespace(&alloc.namespace, "read-job")
    {
        return Err(ApiError::permission_denied());
    }
    Ok(Reply::json(&*alloc)?.query_index(index))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StopResponse {
    #[serde(rename = "EvalID")]
    eval_id: String,
    index: u64,
}

/// Stops one allocation: marks it to migrate and creates an `alloc-stop`
/// evaluation, which stops it and (for a service job) places a
/// replacement. Python-nomad sends no body.
async fn stop(request: Request) -> Result<Reply, ApiError> {
    let id = alloc_id(&request)?;
    let no_shutdown_delay = go_bool(&request, "no_shutdown_delay")?;
    let reschedule = go_bool(&request, "reschedule")?;
    // The request's namespace first, so an unknown ID tells a caller
    // without rights nothing; then the allocation's own.
    crate::jobs::require_namespace(&request, &query_namespace(&request), "alloc-lifecycle")?;
    let alloc = request
        .server()?
        .store()
        .snapshot()
        .alloc(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("allocation not found"))?;
    if !request
        .identity
        .acl
        .allows_namespace(&alloc.namespace, "alloc-lifecycle")
    {
        return Err(ApiError::permission_denied());
    }
    let now = now_nanos();
    let job = alloc.job.as_deref();
    let eval = Evaluation {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: alloc.namespace.clone(),
        priority: job.map_or(50, |job| job.priority),
        eval_type: job.map(|job| job.job_type.clone()).unwrap_or_default(),
        triggered_by: TRIGGER_ALLOC_STOP.into(),
        job_id: alloc.job_id.clone(),
        status: EVAL_STATUS_PENDING.into(),
        create_time: now,
        modify_time: now,
        ..Evaluation::default()
    };
    let eval_id = eval.id.clone();
    let transition = DesiredTransition {
        migrate: Some(true),
        no_shutdown_delay,
        reschedule,
        ..DesiredTransition::default()
    };
    let index = apply_write(
        &request,
        Command::AllocsTransition(Box::new(AllocsTransition {
            transitions: [(id, transition)].into_iter().collect(),
            evals: vec![eval],
            now,
        })),
    )
    .await?;
    Ok(Reply::json(&StopResponse { eval_id, index })?.write_index(index))
}
