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
use caravan_api_types::job::{Job, JobListStub, JobSummary};
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
    /// Keep the existing tasks' resources when updating a job.
    pub preserve_resources: bool,
    /// The evaluation's priority (1-100; `None`: the job's).
    pub eval_priority: Option<u8>,
}

/// Options of a deregister (`nomad job stop -purge -global ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeregisterOptions {
    /// Forget the job instead of keeping it stopped.
    pub purge: bool,
    /// Stop a multiregion job in every region.
    pub global: bool,
    /// The stop evaluation's priority (1-100; `None`: the job's).
    pub eval_priority: Option<u8>,
    /// Skip the groups' and tasks' shutdown delays.
    pub no_shutdown_delay: bool,
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

    /// Registers a job given as JSON (a jobspec parse, a JSON job file):
    /// sent as it is, so a field the typed [`ApiJob`] lacks still reaches
    /// the server, whose decoder matches keys case-insensitively as Go's.
    pub async fn register_value(
        &self,
        job: &Value,
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
        if register.preserve_resources {
            body["PreserveResources"] = json!(true);
        }
        if let Some(priority) = register.eval_priority {
            body["EvalPriority"] = json!(priority);
        }
        let (answer, _) = self
            .client
            .write(Method::PUT, "/v1/jobs", Some(&body), &[], options)
            .await?;
        Ok(answer)
    }

    /// [`Jobs::register`] with the register's own options.
    pub async fn register_with(
        &self,
        job: &ApiJob,
        register: &RegisterOptions,
        options: &WriteOptions,
    ) -> Result<JobRegisterResponse, Error> {
        self.register_value(&serde_json::to_value(job)?, register, options)
            .await
    }

    /// One job, by its ID.
    pub async fn info(&self, id: &str, options: &QueryOptions) -> Result<(Job, QueryMeta), Error> {
        self.client.get(&job_path(id, ""), &[], options).await
    }

    /// One job as the server sent it (`job inspect` prints it unchanged).
    pub async fn info_value(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Value, QueryMeta), Error> {
        self.client.get(&job_path(id, ""), &[], options).await
    }

    /// The job's versions, newest first, as the server sent them.
    pub async fn versions(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<Value>, QueryMeta), Error> {
        let (answer, meta): (Value, QueryMeta) = self
            .client
            .get(&job_path(id, "/versions"), &[], options)
            .await?;
        let versions = match answer.get("Versions") {
            Some(Value::Array(versions)) => versions.clone(),
            _ => Vec::new(),
        };
        Ok((versions, meta))
    }

    /// A new evaluation of the job (`nomad job eval`); with
    /// `force_reschedule`, failed allocations are replaced now rather than
    /// after their reschedule delay. The answer holds `EvalID`.
    pub async fn evaluate(
        &self,
        id: &str,
        force_reschedule: bool,
        options: &WriteOptions,
    ) -> Result<Value, Error> {
        let body = json!({"JobID": id, "EvalOptions": {"ForceReschedule": force_reschedule}});
        let (answer, _) = self
            .client
            .write(
                Method::PUT,
                &job_path(id, "/evaluate"),
                Some(&body),
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }

    /// The job's deployments, newest first.
    pub async fn deployments(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<Value>, QueryMeta), Error> {
        self.client
            .get(&job_path(id, "/deployments"), &[], options)
            .await
    }

    /// How many of the job's allocations are in each state, per group.
    pub async fn summary(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(JobSummary, QueryMeta), Error> {
        self.client
            .get(&job_path(id, "/summary"), &[], options)
            .await
    }

    /// The job's allocations; `all` adds those of earlier jobs that had
    /// the same ID.
    pub async fn allocations_all(
        &self,
        id: &str,
        all: bool,
        options: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        let extra = match all {
            true => vec![("all", "true".to_string())],
            false => Vec::new(),
        };
        self.client
            .get(&job_path(id, "/allocations"), &extra, options)
            .await
    }

    /// The job's allocations.
    pub async fn allocations(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.allocations_all(id, false, options).await
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

    /// Stops the job with the deregister's own options.
    pub async fn deregister_with(
        &self,
        id: &str,
        deregister: &DeregisterOptions,
        options: &WriteOptions,
    ) -> Result<JobRegisterResponse, Error> {
        let mut extra = Vec::new();
        if deregister.purge {
            extra.push(("purge", "true".to_string()));
        }
        if deregister.global {
            extra.push(("global", "true".to_string()));
        }
        if let Some(priority) = deregister.eval_priority {
            extra.push(("eval_priority", priority.to_string()));
        }
        if deregister.no_shutdown_delay {
            extra.push(("no_shutdown_delay", "true".to_string()));
        }
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

    /// Validates a job given as JSON (`/v1/validate/job`), sent as it is.
    pub async fn validate_value(
        &self,
        job: &Value,
        options: &WriteOptions,
    ) -> Result<Value, Error> {
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

/// Percent-escapes what a path segment (or a query value) may not hold:
/// everything but RFC 3986's unreserved characters.
pub fn escape(segment: &str) -> String {
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
