//! `PUT/POST /v1/jobs/parse`: an HCL2 jobspec to the API's job JSON, in the
//! agent, with no write. Without `Canonicalize` the unset fields are `null`
//! (the `api` package shape); with it the `api` defaults are filled in, but
//! not the server's (no datacenters, no node pool), as in Nomad.

use caravan_api_types::job::api::ApiJob;
use caravan_api_types::job::canonicalize::canonicalize;
use caravan_jobspec::{parse, ParseOptions};
use serde::Deserialize;

use super::{query_namespace, require_body};
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::Request;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ParseRequest {
    #[serde(rename = "JobHCL")]
    job_hcl: String,
    canonicalize: bool,
    /// A var file's contents (`name = value` lines).
    variables: String,
}

pub(super) async fn parse_job(request: Request) -> Result<Reply, ApiError> {
    let namespace = query_namespace(&request);
    let acl = &request.identity.acl;
    if !acl.allows_namespace(&namespace, "parse-job")
        && !acl.allows_namespace(&namespace, "submit-job")
    {
        return Err(ApiError::permission_denied());
    }
    require_body(&request)?;
    let body: ParseRequest = request.json_body("Failed to decode parse request")?;
    if body.job_hcl.trim().is_empty() {
        return Err(ApiError::bad_request("Job spec is empty"));
    }
    let options = ParseOptions {
        file_name: "input.hcl".into(),
        var_file: (!body.variables.is_empty()).then_some(body.variables),
        var_file_name: "variables.hcl".into(),
        ..ParseOptions::default()
    };
    let value = parse(&body.job_hcl, &options)
        .map_err(|error| ApiError::bad_request(format!("Failed to parse job: {error}")))?;
    let bytes = serde_json::to_vec(&value)
        .map_err(|error| ApiError::internal(format!("failed to encode job: {error}")))?;
    let api: ApiJob = crate::decode::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request(format!("Failed to parse job: {error}")))?;
    if body.canonicalize {
        Reply::json(&canonicalize(api))
    } else {
        Reply::json(&api)
    }
}
