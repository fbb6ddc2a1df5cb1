//! The evaluations API page: `/v1/evaluations`, `/v1/evaluation/:id`,
//! `/v1/evaluation/:id/allocations`.

use std::sync::Arc;

use caravan_api_types::alloc::AllocListStub;
use caravan_api_types::eval::{Evaluation, EvaluationStub};
use caravan_state::{Command, Table, WatchKey, ALLOCS_BY_EVAL};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::jobs::{apply_write, visible, ALL_NAMESPACES};
use crate::paginate::{compile_filter, paginate};
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, DELETE, GET, MANAGEMENT};

/// At most this many IDs in one delete (Nomad's limit, from its Raft
/// message size).
const MAX_DELETE_IDS: usize = 7281;

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/evaluations",
            vec![
                endpoint(GET, Acl::InHandler, Consistency::LeaderUnlessStale, list),
                endpoint(DELETE, MANAGEMENT, Consistency::Leader, delete),
            ],
        ),
        route(
            "/v1/evaluation/{id}",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                get,
            )],
        ),
        route(
            "/v1/evaluation/{id}/allocations",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                allocations,
            )],
        ),
    ]
}

fn eval_id(request: &Request) -> Result<String, ApiError> {
    let id = request.param("id");
    if id.len() != 36 || uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(
            "failed to lookup eval: eval lookup failed: index error: UUID must be 36 characters",
        ));
    }
    Ok(id.to_string())
}

/// The namespace of an evaluation list: python-nomad never sends one, so
/// the default is `default` as in Nomad.
fn namespace(request: &Request) -> String {
    crate::jobs::query_namespace(request)
}

async fn list(request: Request) -> Result<Reply, ApiError> {
    let namespace = namespace(&request);
    let job = request.query_value("job").unwrap_or_default().to_string();
    let status = request
        .query_value("status")
        .unwrap_or_default()
        .to_string();
    if !request.query.filter.is_empty() && (!job.is_empty() || !status.is_empty()) {
        return Err(ApiError::bad_request(
            "Filter expression cannot be used with other filter parameters",
        ));
    }
    let filter = compile_filter(&request.query)?;
    let query = request.query.clone();
    let acl = request.identity.acl.clone();
    let (index, (evals, next_token)) = blocking_query(&request, &[Table::Evals.into()], |state| {
        let mut rows: Vec<(String, &Evaluation)> = state
            .evals()
            .filter(|eval| eval.id.starts_with(&query.prefix))
            .filter(|eval| visible(&acl, &namespace, &eval.namespace, "read-job"))
            .filter(|eval| job.is_empty() || eval.job_id == job)
            .filter(|eval| status.is_empty() || eval.status == status)
            .map(|eval| {
                let token = if query.prefix.is_empty() {
                    format!("{}.{}", eval.create_index, eval.id)
                } else {
                    eval.id.clone()
                };
                (token, eval.as_ref())
            })
            .collect();
        if query.prefix.is_empty() {
            rows.sort_by_key(|(_, eval)| (eval.create_index, eval.id.clone()));
        }
        if query.reverse {
            rows.reverse();
        }
        let page = paginate(
            rows.iter(),
            &query,
            filter.as_ref(),
            |row| row.1,
            |row| &row.0,
        )?;
        let evals: Vec<Evaluation> = page
            .items
            .into_iter()
            .map(|(_, eval)| (*eval).clone())
            .collect();
        Ok((
            state.table_index(Table::Evals).max(1),
            (evals, page.next_token),
        ))
    })
    .await?;
    Ok(Reply::json(&evals)?
        .query_index(index)
        .with_next_token(next_token))
}

async fn get(request: Request) -> Result<Reply, ApiError> {
    let id = eval_id(&request)?;
    let related = request.query_value("related") == Some("true");
    let watch = [WatchKey::Row(Table::Evals, id.clone())];
    let (index, found) = blocking_query(&request, &watch, |state| {
        Ok(match state.eval(&id) {
            Some(eval) => {
                let mut eval = (**eval).clone();
                if related {
                    eval.related_evals = Some(related_evals(state, &eval));
                }
                (eval.modify_index, Some(eval))
            }
            None => (state.table_index(Table::Evals).max(1), None),
        })
    })
    .await?;
    let eval = found.ok_or_else(|| ApiError::not_found("eval not found"))?;
    if !request
        .identity
        .acl
        .allows_namespace(&eval.namespace, "read-job")
    {
        return Err(ApiError::permission_denied());
    }
    Ok(Reply::json(&eval)?.query_index(index))
}

/// The chain an evaluation belongs to, through `NextEval`, `PreviousEval`
/// and `BlockedEval` links in both directions.
fn related_evals(state: &caravan_state::State, eval: &Evaluation) -> Vec<EvaluationStub> {
    let mut seen = std::collections::BTreeSet::from([eval.id.clone()]);
    let mut queue = vec![eval.clone()];
    let mut related = Vec::new();
    while let Some(current) = queue.pop() {
        let links = [
            &current.next_eval,
            &current.previous_eval,
            &current.blocked_eval,
        ];
        let linked = links
            .into_iter()
            .filter(|id| !id.is_empty())
            .filter_map(|id| state.eval(id).map(|eval| (**eval).clone()));
        let pointing = state
            .evals_by_job(&current.namespace, &current.job_id)
            .filter(|other| {
                other.previous_eval == current.id
                    || other.next_eval == current.id
                    || other.blocked_eval == current.id
            })
            .map(|eval| (**eval).clone())
            .collect::<Vec<_>>();
        for other in linked.chain(pointing) {
            if seen.insert(other.id.clone()) {
                related.push(other.stub());
                queue.push(other);
            }
        }
    }
    related
}

async fn allocations(request: Request) -> Result<Reply, ApiError> {
    let id = eval_id(&request)?;
    crate::jobs::require_namespace(&request, &namespace(&request), "read-job")?;
    let acl = request.identity.acl.clone();
    let watch = [WatchKey::Index(Table::Allocs, ALLOCS_BY_EVAL, id.clone())];
    let (index, stubs) = blocking_query(&request, &watch, |state| {
        let stubs: Vec<AllocListStub> = state
            .allocs_by_eval(&id)
            .filter(|alloc| visible(&acl, ALL_NAMESPACES, &alloc.namespace, "read-job"))
            // Eval allocation lists leave DisplayMessage as stored.
            .map(|alloc| alloc.stub(false, true))
            .collect();
        Ok((state.table_index(Table::Allocs).max(1), stubs))
    })
    .await?;
    Ok(Reply::json(&stubs)?.query_index(index))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DeleteRequest {
    #[serde(rename = "EvalIDs")]
    eval_ids: Vec<String>,
    filter: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteResponse {
    count: usize,
    index: u64,
}

/// `DELETE /v1/evaluations`: by ID or by filter, never both; only
/// terminal evaluations (and their terminal allocations) may go.
async fn delete(request: Request) -> Result<Reply, ApiError> {
    crate::jobs::require_body(&request)?;
    let body: DeleteRequest = request.json_body("Failed to decode eval delete request")?;
    match (body.eval_ids.is_empty(), body.filter.is_empty()) {
        (false, false) => {
            return Err(ApiError::bad_request(
                "evals cannot be deleted by both ID and filter",
            ))
        }
        (true, true) => {
            return Err(ApiError::bad_request(
                "evals must be deleted by either ID or filter",
            ))
        }
        _ => {}
    }
    if body.eval_ids.len() > MAX_DELETE_IDS {
        return Err(ApiError::bad_request(format!(
            "request includes {} evaluation IDs, must be {MAX_DELETE_IDS} or fewer",
            body.eval_ids.len()
        )));
    }
    let state = request.server()?.store().snapshot();
    let chosen: Vec<Arc<Evaluation>> = if body.filter.is_empty() {
        body.eval_ids
            .iter()
            .map(|id| {
                state
                    .eval(id)
                    .cloned()
                    .ok_or_else(|| ApiError::internal("eval not found"))
            })
            .collect::<Result<_, _>>()?
    } else {
        let filter = caravan_filter::Filter::new(&body.filter).map_err(|error| {
            ApiError::bad_request(format!("failed to read filter expression: {error}"))
        })?;
        let mut chosen = Vec::new();
        for eval in state.evals() {
            let datum = serde_json::to_value(&**eval)
                .map_err(|error| ApiError::internal(error.to_string()))?;
            if filter
                .matches(&datum)
                .map_err(|error| ApiError::bad_request(error.to_string()))?
            {
                chosen.push(Arc::clone(eval));
            }
        }
        chosen
    };
    let mut allocs = Vec::new();
    for eval in &chosen {
        let unsafe_alloc = state
            .allocs_by_eval(&eval.id)
            .any(|alloc| !alloc.terminal());
        if !eval.terminal() || unsafe_alloc {
            return Err(ApiError::internal(format!(
                "eval {} is not safe to delete",
                eval.id
            )));
        }
        allocs.extend(state.allocs_by_eval(&eval.id).map(|alloc| alloc.id.clone()));
    }
    drop(state);
    let count = chosen.len();
    let index = apply_write(
        &request,
        Command::EvalsDelete {
            evals: chosen.iter().map(|eval| eval.id.clone()).collect(),
            allocs,
        },
    )
    .await?;
    Ok(Reply::json(&DeleteResponse { count, index })?.write_index(index))
}
