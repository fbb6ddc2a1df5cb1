//! `/v1/job/:id[/…]`. Nomad routes this page by suffix, not by segment:
//! job IDs may contain `/` (`parent/periodic-1`), so the path after
//! `/v1/job/` is tested against the known suffixes and the rest is the ID
//! (jobs-api.md §0.1).

use std::sync::Arc;

use caravan_api_types::alloc::{DesiredTransition, ALLOC_CLIENT_FAILED};
use caravan_api_types::eval::{Evaluation, TRIGGER_JOB_DEREGISTER, TRIGGER_JOB_REGISTER};
use caravan_api_types::job::{JobRegisterResponse, JobSummary, JOB_TYPE_SERVICE};
use caravan_state::job_commands::{AllocsTransition, JobDeregister};
use caravan_state::{new_eval, Command, Table, WatchKey, ALLOCS_BY_JOB, EVALS_BY_JOB};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::register::register;
use super::{apply_write, go_bool, now_nanos, query_namespace, require_namespace};
use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::Request;

/// The suffixes in Nomad's order; anything else is the job ID itself.
const SUFFIXES: &[&str] = &[
    "/evaluate",
    "/allocations",
    "/evaluations",
    "/periodic/force",
    "/plan",
    "/summary",
    "/dispatch",
    "/dispatch/payload",
    "/versions",
    "/revert",
    "/deployments",
    "/deployment",
    "/stable",
    "/scale",
    "/services",
    "/submission",
    "/actions",
    "/action",
];

fn split(rest: &str) -> (&str, &str) {
    for suffix in SUFFIXES {
        if let Some(id) = rest.strip_suffix(suffix) {
            if !id.is_empty() {
                return (id, suffix);
            }
        }
    }
    (rest, "")
}

fn job_not_found() -> ApiError {
    ApiError::not_found("job not found")
}

/// Every method of `/v1/job/*`.
pub(super) async fn job(request: Request) -> Result<Reply, ApiError> {
    let rest = request.param("rest").to_string();
    let (id, suffix) = split(&rest);
    let id = id.to_string();
    match (request.method.clone(), suffix) {
        (Method::GET, "") => get(request, id).await,
        (Method::PUT | Method::POST, "") => register(request, Some(id)).await,
        (Method::DELETE, "") => deregister(request, id).await,
        (Method::GET, "/versions") => versions(request, id).await,
        (Method::GET, "/allocations") => allocations(request, id).await,
        (Method::GET, "/evaluations") => evaluations(request, id).await,
        (Method::GET, "/summary") => summary(request, id).await,
        (Method::GET, "/deployments") => empty_list(request, id).await,
        (Method::GET, "/deployment") => no_deployment(request, id).await,
        (Method::PUT | Method::POST, "/evaluate") => evaluate(request, id).await,
        (
            _,
            "/plan" | "/dispatch" | "/dispatch/payload" | "/revert" | "/stable" | "/scale"
            | "/periodic/force" | "/services" | "/submission" | "/actions" | "/action",
        ) => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{} is not implemented by Caravan yet", &suffix[1..]),
        )),
        _ => Err(ApiError::invalid_method(StatusCode::METHOD_NOT_ALLOWED)),
    }
}

async fn get(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    let key = caravan_state::ns_key(&namespace, &id);
    let watch = [WatchKey::Row(Table::Jobs, key)];
    let (index, job) = blocking_query(&request, &watch, |state| {
        Ok(match state.job(&namespace, &id) {
            Some(job) => (job.modify_index, Some(Arc::clone(job))),
            None => (state.table_index(Table::Jobs).max(1), None),
        })
    })
    .await?;
    let job = job.ok_or_else(job_not_found)?;
    Ok(Reply::json(&*job)?.query_index(index))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VersionsResponse {
    versions: Vec<Arc<caravan_api_types::job::Job>>,
    diffs: Option<Vec<serde_json::Value>>,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

async fn versions(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    let key = caravan_state::ns_key(&namespace, &id);
    let watch = [WatchKey::Index(
        Table::JobVersions,
        caravan_state::VERSIONS_BY_JOB,
        key,
    )];
    let (index, versions) = blocking_query(&request, &watch, |state| {
        let versions = state.job_versions(&namespace, &id);
        let index = versions
            .iter()
            .map(|job| job.modify_index)
            .max()
            .unwrap_or_else(|| state.table_index(Table::JobVersions).max(1));
        Ok((index, versions))
    })
    .await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("job versions not found"));
    }
    Ok(Reply::json(&VersionsResponse {
        versions,
        diffs: None,
        index,
        last_contact: 0,
        known_leader: true,
        next_token: String::new(),
    })?
    .query_index(index))
}

async fn allocations(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    let all = go_bool(&request, "all").unwrap_or(None).unwrap_or(false);
    let key = caravan_state::ns_key(&namespace, &id);
    let watch = [WatchKey::Index(Table::Allocs, ALLOCS_BY_JOB, key)];
    let (index, stubs) = blocking_query(&request, &watch, |state| {
        let current = state.job(&namespace, &id).map(|job| job.create_index);
        let stubs: Vec<_> = state
            .allocs_by_job(&namespace, &id)
            .filter(|alloc| {
                // Without `all`, only allocations of the job as it exists
                // now (not of an earlier job purged and re-registered).
                all || current.is_none()
                    || alloc.job.as_ref().map(|job| job.create_index) == current
            })
            .map(|alloc| alloc.stub(false, true))
            .collect();
        Ok((state.table_index(Table::Allocs).max(1), stubs))
    })
    .await?;
    Ok(Reply::json(&stubs)?.query_index(index))
}

async fn evaluations(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    let key = caravan_state::ns_key(&namespace, &id);
    let watch = [WatchKey::Index(Table::Evals, EVALS_BY_JOB, key)];
    let (index, evals) = blocking_query(&request, &watch, |state| {
        let evals: Vec<Evaluation> = state
            .evals_by_job(&namespace, &id)
            .map(|eval| (**eval).clone())
            .collect();
        Ok((state.table_index(Table::Evals).max(1), evals))
    })
    .await?;
    Ok(Reply::json(&evals)?.query_index(index))
}

async fn summary(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    let key = caravan_state::ns_key(&namespace, &id);
    let watch = [WatchKey::Row(Table::JobSummaries, key)];
    let (index, summary) = blocking_query(&request, &watch, |state| {
        Ok(match state.job_summary(&namespace, &id) {
            Some(summary) => (summary.modify_index, Some(summary.clone())),
            None => (state.table_index(Table::JobSummaries).max(1), None),
        })
    })
    .await?;
    let summary: JobSummary = summary.ok_or_else(job_not_found)?;
    Ok(Reply::json(&summary)?.query_index(index))
}

/// Deployments are not built yet: every job has none.
async fn empty_list(request: Request, _id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    Ok(Reply::json(&Vec::<serde_json::Value>::new())?.query_index(1))
}

async fn no_deployment(request: Request, _id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    require_namespace(&request, &namespace, "read-job")?;
    Ok(Reply::json(&serde_json::Value::Null)?.query_index(1))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeregisterResponse {
    #[serde(rename = "EvalID")]
    eval_id: String,
    eval_create_index: u64,
    job_modify_index: u64,
    #[serde(rename = "VolumeEvalID")]
    volume_eval_id: String,
    volume_eval_index: u64,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

async fn deregister(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    let purge = go_bool(&request, "purge")?.unwrap_or(false);
    let capability = if purge { "purge-job" } else { "deregister-job" };
    if !request
        .identity
        .acl
        .allows_namespace(&namespace, "submit-job")
    {
        require_namespace(&request, &namespace, capability)?;
    }
    let eval_priority = match request.query_value("eval_priority") {
        None | Some("") => 0,
        Some(text) => text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("Failed to parse eval_priority: {text:?}"))
        })?,
    };
    if eval_priority != 0 && !(1..=100).contains(&eval_priority) {
        return Err(ApiError::bad_request(
            "Eval priority must be between 1 and 100 inclusively",
        ));
    }
    let existing = request
        .server()?
        .store()
        .snapshot()
        .job(&namespace, &id)
        .cloned();
    let Some(existing) = existing else {
        return Reply::json(&DeregisterResponse {
            eval_id: String::new(),
            eval_create_index: 0,
            job_modify_index: 0,
            volume_eval_id: String::new(),
            volume_eval_index: 0,
            index: 0,
            last_contact: 0,
            known_leader: false,
            next_token: String::new(),
        });
    };
    let now = now_nanos();
    let eval = (!existing.is_template()).then(|| {
        let mut eval = new_eval(
            &existing,
            TRIGGER_JOB_DEREGISTER,
            uuid::Uuid::new_v4().to_string(),
            now,
        );
        // Nomad's deregister evals are service evals whatever the job.
        eval.eval_type = JOB_TYPE_SERVICE.into();
        if eval_priority != 0 {
            eval.priority = eval_priority;
        }
        eval
    });
    let eval_id = eval
        .as_ref()
        .map(|eval| eval.id.clone())
        .unwrap_or_default();
    let index = apply_write(
        &request,
        Command::JobDeregister(Box::new(JobDeregister {
            namespace,
            job_id: id,
            purge,
            eval,
            submit_time: now,
        })),
    )
    .await?;
    Reply::json(&DeregisterResponse {
        eval_create_index: if eval_id.is_empty() { 0 } else { index },
        eval_id,
        job_modify_index: index,
        volume_eval_id: String::new(),
        volume_eval_index: 0,
        index,
        last_contact: 0,
        known_leader: false,
        next_token: String::new(),
    })
    .map(|reply| reply.write_index(index))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EvaluateRequest {
    #[serde(rename = "JobID")]
    job_id: Option<String>,
    eval_options: EvalOptions,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EvalOptions {
    force_reschedule: bool,
}

/// `POST /v1/job/:id/evaluate`: a fresh `job-register` evaluation. An
/// empty body is accepted (python-nomad sends none).
async fn evaluate(request: Request, id: String) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    if !request
        .identity
        .acl
        .allows_namespace(&namespace, "submit-job")
    {
        require_namespace(&request, &namespace, "evaluate-job")?;
    }
    let mut force_reschedule = false;
    if !request.body.is_empty() {
        let body: EvaluateRequest = request.json_body("Failed to decode evaluate request")?;
        match body.job_id.as_deref() {
            None | Some("") => return Err(ApiError::bad_request("Job ID must be specified")),
            Some(job_id) if job_id != id => {
                return Err(ApiError::bad_request("JobID not same as job name"))
            }
            Some(_) => {}
        }
        force_reschedule = body.eval_options.force_reschedule;
    }
    let job = request
        .server()?
        .store()
        .snapshot()
        .job(&namespace, &id)
        .cloned()
        .ok_or_else(job_not_found)?;
    if job
        .periodic
        .as_ref()
        .is_some_and(|periodic| periodic.enabled)
    {
        return Err(ApiError::internal("can't evaluate periodic job"));
    }
    if job.parameterized_job.is_some() {
        return Err(ApiError::internal("can't evaluate parameterized job"));
    }
    let eval = new_eval(
        &job,
        TRIGGER_JOB_REGISTER,
        uuid::Uuid::new_v4().to_string(),
        now_nanos(),
    );
    let eval_id = eval.id.clone();
    let command = if force_reschedule {
        // Failed allocations are rescheduled now rather than after their
        // delay: the scheduler reads the transition from each of them.
        let state = request.server()?.store().snapshot();
        let transitions = state
            .allocs_by_job(&namespace, &id)
            .filter(|alloc| alloc.client_status == ALLOC_CLIENT_FAILED && !alloc.server_terminal())
            .map(|alloc| {
                let wanted = DesiredTransition {
                    force_reschedule: Some(true),
                    ..DesiredTransition::default()
                };
                (alloc.id.clone(), wanted)
            })
            .collect();
        Command::AllocsTransition(Box::new(AllocsTransition {
            transitions,
            evals: vec![eval],
            now: now_nanos(),
        }))
    } else {
        Command::EvalsUpsert { evals: vec![eval] }
    };
    let index = apply_write(&request, command).await?;
    Ok(Reply::json(&JobRegisterResponse {
        eval_id,
        eval_create_index: index,
        job_modify_index: job.modify_index,
        warnings: String::new(),
        index,
        last_contact: 0,
        known_leader: false,
        next_token: String::new(),
    })?
    .write_index(index))
}
