//! `PUT/POST /v1/validate/job`: the job after Nomad's defaults, checked,
//! nothing written. Always 200 when the body parses; the problems are in
//! the answer (`ValidationErrors`, and `Error` as one multierror text).

use caravan_api_types::job::api::ApiJob;
use caravan_api_types::job::canonicalize::{apply_server_defaults, canonicalize, ServerDefaults};
use caravan_api_types::job::validate::{multierror, validate, warnings_text};
use caravan_api_types::job::DEFAULT_NAMESPACE;
use serde::{Deserialize, Serialize};

use super::{require_body, require_namespace};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::Request;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ValidateRequest {
    job: Option<ApiJob>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ValidateResponse {
    driver_config_validated: bool,
    validation_errors: Option<Vec<String>>,
    error: String,
    warnings: String,
}

pub(super) async fn validate_job(request: Request) -> Result<Reply, ApiError> {
    require_body(&request)?;
    let body: ValidateRequest = request.json_body("Failed to decode job")?;
    let Some(api) = body.job else {
        return Err(ApiError::bad_request("Job must be specified"));
    };
    // The job's own namespace, whatever `?namespace=` says (Nomad's rule
    // for this endpoint).
    let namespace = api
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    require_namespace(&request, &namespace, "read-job")?;
    let mut job = canonicalize(api);
    let region = job.region.clone();
    apply_server_defaults(
        &mut job,
        &ServerDefaults {
            region,
            ..ServerDefaults::default()
        },
    );
    let errors = validate(&job);
    Reply::json(&ValidateResponse {
        driver_config_validated: true,
        error: if errors.is_empty() {
            String::new()
        } else {
            multierror(&errors)
        },
        validation_errors: (!errors.is_empty()).then_some(errors),
        warnings: warnings_text(&[]),
    })
}
