//! `/v1/jobs` and `/v1/job/:id`: registering, reading and stopping jobs.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::{QueryOptions, WriteOptions};
//! let job = serde_json::from_value(serde_json::json!({
//!     "ID": "example",
//!     "TaskGroups": [{"Name": "g", "Tasks": [{
//!         "Name": "t", "Driver": "raw_exec",
//!         "Config": {"command": "/bin/sleep", "args": ["600"]}}]}]
//! }))?;
//! let registered = client.jobs().register(&job, &WriteOptions::default()).await?;
//! println!("evaluation {}", registered.eval_id);
//! let (allocations, _) = client.jobs().allocations("example", &QueryOptions::default()).await?;
//! # Ok(())
//! # }
//! ```

use caravan_api_types::alloc::AllocListStub;
use caravan_api_types::eval::Evaluation;
use caravan_api_types::job::api::ApiJob;
pub use caravan_api_types::job::JobRegisterResponse;
use caravan_api_types::job::{Job, JobListStub};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{Client, Error, QueryMeta, QueryOptions, WriteOptions};

pub struct Jobs<'a> {
    pub(crate) client: &'a Client,
}

/// Options of a register (`nomad job run -check-index`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Register only if the job's modify index is this (0: only if new).
    pub enforce_index: Option<u64>,
    pub policy_override: bool,
    pub preserve_counts: bool,
}

impl Jobs<'_> {
    /// Every job (`prefix`, `filter`, `namespace = "*"` in `options`).
    pub async fn list(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<JobListStub>, QueryMeta), Error> {
        self.client.get("/v1/jobs", &[], options).await
    }

    /// Registers `job` (a new one, or a new version).
    pub async fn register(
        &self,
        job: &ApiJob,
        options: &WriteOptions,
    ) -> Result<JobRegisterResponse, Error> {
        self.register_with(job, &RegisterOptions::default(), options)
            .await
    }

    /// [`Jobs::register`] with the register's own options.
    pub async fn register_with(
        &self,
        job: &ApiJob,
        register: &RegisterOptions,
        options: &WriteOptions,
    ) -> Result<JobRegisterResponse, Error> {
        let mut body = json!({"Job": job});
        if let Some(index) = register.enforce_index {
            body["EnforceIndex"] = json!(true);
            body["JobModifyIndex"] = json!(index);
        }
        if register.policy_override {
            body["PolicyOverride"] = json!(true);
        }
        if register.preserve_counts {
            body["PreserveCounts"] = json!(true);
        }
        let (answer, _) = self
            .client
            .write(Method::PUT, "/v1/jobs", Some(&body), &[], options)
            .await?;
        Ok(answer)
    }

    /// One job, by its ID.
    pub async fn info(&self, id: &str, options: &QueryOptions) -> Result<(Job, QueryMeta), Error> {
        self.client.get(&job_path(id, ""), &[], options).await
    }

    /// The job's allocations.
    pub async fn allocations(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.client
            .get(&job_path(id, "/allocations"), &[], options)
            .await
    }

    /// The job's evaluations.
    pub async fn evaluations(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<Evaluation>, QueryMeta), Error> {
        self.client
            .get(&job_path(id, "/evaluations"), &[], options)
            .await
    }

    /// Stops the job (`purge`: and forgets it).
    pub async fn deregister(
        &self,
        id: &str,
        purge: bool,
        options: &WriteOptions,
    ) -> Result<JobRegisterResponse, Error> {
        let extra = match purge {
            true => vec![("purge", "true".to_string())],
            false => Vec::new(),
        };
        let (answer, _) = self
            .client
            .write::<(), _>(Method::DELETE, &job_path(id, ""), None, &extra, options)
            .await?;
        Ok(answer)
    }

    /// Parses HCL into the API's job (`/v1/jobs/parse`).
    pub async fn parse(&self, hcl: &str, canonicalize: bool) -> Result<ApiJob, Error> {
        let body = json!({"JobHCL": hcl, "Canonicalize": canonicalize});
        let (job, _) = self
            .client
            .write(
                Method::PUT,
                "/v1/jobs/parse",
                Some(&body),
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(job)
    }

    /// Validates a job (`/v1/validate/job`): the errors and warnings.
    pub async fn validate(&self, job: &ApiJob, options: &WriteOptions) -> Result<Value, Error> {
        let (answer, _) = self
            .client
            .write(
                Method::PUT,
                "/v1/validate/job",
                Some(&json!({"Job": job})),
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }
}

/// `/v1/job/<id><rest>`, the ID escaped for a path.
fn job_path(id: &str, rest: &str) -> String {
    format!("/v1/job/{}{rest}", escape(id))
}

/// Percent-escapes what a path segment may not hold.
pub(crate) fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
