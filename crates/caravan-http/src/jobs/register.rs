//! Registering a job (`PUT/POST /v1/jobs`, `PUT/POST /v1/job/:id`): Nomad's
//! defaults, validation (a 400 listing every problem; nothing written),
//! then one Raft write carrying the job and its evaluation.

use std::sync::Arc;

use caravan_api_types::eval::TRIGGER_JOB_REGISTER;
use caravan_api_types::job::api::ApiJob;
use caravan_api_types::job::canonicalize::{apply_server_defaults, canonicalize, ServerDefaults};
use caravan_api_types::job::validate::{multierror, validate};
use caravan_api_types::job::{Job, JobRegisterResponse, DEFAULT_NAMESPACE, JOB_TYPE_SYSTEM};
use caravan_state::job_commands::JobRegister;
use caravan_state::{new_eval, Command, CommandResult};
use serde::Deserialize;

use super::{apply_write, now_nanos, require_body, require_namespace};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::Request;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct RegisterRequest {
    pub job: Option<ApiJob>,
    pub enforce_index: bool,
    pub job_modify_index: u64,
    pub preserve_counts: bool,
    pub eval_priority: i64,
    pub namespace: Option<String>,
    pub region: Option<String>,
}

/// The namespace a write is for: the query parameter, then the body's,
/// then the job's own, then `default` (jobs-api.md §0.8).
fn write_namespace(request: &Request, body: Option<&str>, job: Option<&str>) -> String {
    [request.query.namespace.as_deref(), body, job]
        .into_iter()
        .flatten()
        .find(|namespace| !namespace.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

/// Registers the job in `body`; `path_id` is the ID from `/v1/job/:id`.
pub(super) async fn register(request: Request, path_id: Option<String>) -> Result<Reply, ApiError> {
    require_body(&request)?;
    let body: RegisterRequest = request.json_body("Failed to decode job")?;
    let Some(api) = body.job else {
        return Err(ApiError::bad_request("Job must be specified"));
    };
    if let Some(path_id) = &path_id {
        match api.id.as_deref() {
            None | Some("") => return Err(ApiError::bad_request("Job ID hasn't been provided")),
            Some(id) if id != path_id => {
                return Err(ApiError::bad_request("Job ID does not match name"))
            }
            Some(_) => {}
        }
    }
    if body.eval_priority != 0 && !(1..=100).contains(&body.eval_priority) {
        return Err(ApiError::bad_request(
            "Eval priority must be between 1 and 100 inclusively",
        ));
    }
    let namespace = write_namespace(
        &request,
        body.namespace.as_deref(),
        api.namespace.as_deref(),
    );
    require_namespace(&request, &namespace, "submit-job")?;
    let mut job = canonicalize(api);
    job.namespace = namespace;
    if let Some(region) = body.region.filter(|region| !region.is_empty()) {
        if job.region.is_empty() || job.region == "global" {
            job.region = region;
        }
    }
    apply_server_defaults(
        &mut job,
        &ServerDefaults {
            region: request.ctx.config.region.clone(),
            ..ServerDefaults::default()
        },
    );
    if job.job_type == JOB_TYPE_SYSTEM
        && job.task_groups.iter().any(|group| group.scaling.is_some())
    {
        return Err(ApiError::bad_request(
            "Task groups with job type system do not support scaling blocks",
        ));
    }
    let errors = validate(&job);
    if !errors.is_empty() {
        return Err(ApiError::bad_request(multierror(&errors)));
    }
    // Mounting a host volume needs the token's `host_volume` rule for it
    // (Nomad's `mount-readonly` / `mount-readwrite`).
    let volumes = job
        .task_groups
        .iter()
        .flat_map(|group| group.volume_requests());
    for volume in volumes.filter(|volume| volume.is_host()) {
        if !request
            .identity
            .acl
            .allows_host_volume(&volume.source, volume.read_only)
        {
            return Err(ApiError::permission_denied());
        }
    }
    let server = request.server()?;
    let state = server.store().snapshot();
    if !request.identity.acl.is_management()
        && state
            .scheduler_config()
            .is_some_and(|config| config.reject_job_registration)
    {
        return Err(ApiError::permission_denied_with(
            "Job registration, dispatch, and scale are disabled by the scheduler configuration",
        ));
    }
    // Nomad's RPC errors (500s); the state machine refuses a missing
    // namespace too.
    let Some(namespace) = state.namespace(&job.namespace) else {
        return Err(ApiError::internal(caravan_state::nonexistent_namespace(
            &job.id,
            &job.namespace,
        )));
    };
    if let Some(refusal) = namespace.job_refusal(&job) {
        return Err(ApiError::internal(refusal));
    }
    let existing = state.job(&job.namespace, &job.id).cloned();
    drop(state);
    if let Some(existing) = &existing {
        check_update(existing, &job)?;
        if body.preserve_counts {
            for group in &mut job.task_groups {
                if let Some(stored) = existing.group(&group.name) {
                    group.count = stored.count;
                }
            }
        }
    }
    let now = now_nanos();
    job.submit_time = now;
    job.nomad_token_id = request
        .identity
        .token
        .as_ref()
        .map(|token| token.accessor_id.clone())
        .unwrap_or_default();
    let eval = (!job.is_template()).then(|| {
        let mut eval = new_eval(
            &job,
            TRIGGER_JOB_REGISTER,
            uuid::Uuid::new_v4().to_string(),
            now,
        );
        if body.eval_priority != 0 {
            eval.priority = body.eval_priority;
        }
        eval
    });
    let eval_id = eval
        .as_ref()
        .map(|eval| eval.id.clone())
        .unwrap_or_default();
    let (namespace, id) = (job.namespace.clone(), job.id.clone());
    let command = Command::JobRegister(Box::new(JobRegister {
        job: Arc::new(job),
        eval,
        enforce_index: body.enforce_index.then_some(body.job_modify_index),
        namespace_checked: true,
    }));
    let index = apply_write(&request, command).await?;
    let job_modify_index = request
        .server()?
        .store()
        .snapshot()
        .job(&namespace, &id)
        .map_or(index, |job| job.job_modify_index);
    Ok(Reply::json(&JobRegisterResponse {
        eval_create_index: if eval_id.is_empty() { 0 } else { index },
        eval_id,
        job_modify_index,
        warnings: String::new(),
        index,
        last_contact: 0,
        known_leader: false,
        next_token: String::new(),
    })?
    .write_index(index))
}

/// What an update may not change (jobs-api.md §1.8).
fn check_update(existing: &Job, job: &Job) -> Result<(), ApiError> {
    if existing.job_type != job.job_type {
        return Err(ApiError::bad_request(format!(
            "cannot update job from type {:?} to {:?}",
            existing.job_type, job.job_type
        )));
    }
    let periodic = |job: &Job| {
        job.periodic
            .as_ref()
            .is_some_and(|periodic| periodic.enabled)
    };
    match (periodic(existing), periodic(job)) {
        (true, false) => {
            return Err(ApiError::bad_request(
                "cannot update periodic job to being non-periodic",
            ))
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "cannot update non-periodic job to being periodic",
            ))
        }
        _ => {}
    }
    match (
        existing.parameterized_job.is_some(),
        job.parameterized_job.is_some(),
    ) {
        (true, false) => Err(ApiError::bad_request(
            "cannot update parameterized job to being non-parameterized",
        )),
        (false, true) => Err(ApiError::bad_request(
            "cannot update non-parameterized job to being parameterized",
        )),
        _ => Ok(()),
    }
}

/// Maps a write's result: an `EnforceIndex` conflict is 409 with Nomad's
/// text, any other refusal a 400.
pub(super) fn write_result(result: CommandResult, index: u64) -> Result<u64, ApiError> {
    match result {
        CommandResult::Conflict(text) => Err(ApiError::new(http::StatusCode::CONFLICT, text)),
        CommandResult::Refused(text) => Err(ApiError::bad_request(text)),
        CommandResult::Done | CommandResult::Cas(_) => Ok(index),
    }
}
