//! `/v1/evaluations` and `/v1/evaluation/:id`.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client, id: &str) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::QueryOptions;
//! let (evaluation, _) = client.evaluations().info(id, &QueryOptions::default()).await?;
//! println!("{} {}", evaluation.id, evaluation.status);
//! # Ok(())
//! # }
//! ```

use caravan_api_types::alloc::AllocListStub;
use caravan_api_types::eval::{Evaluation, EvaluationStub};

use serde_json::Value;

use crate::{Client, Error, QueryMeta, QueryOptions, WriteOptions};

pub struct Evaluations<'a> {
    pub(crate) client: &'a Client,
}

impl Evaluations<'_> {
    pub async fn list(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<EvaluationStub>, QueryMeta), Error> {
        self.client.get("/v1/evaluations", &[], options).await
    }

    pub async fn info(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Evaluation, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/evaluation/{id}"), &[], options)
            .await
    }

    /// The allocations the evaluation placed or changed.
    pub async fn allocations(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/evaluation/{id}/allocations"), &[], options)
            .await
    }

    /// Deletes terminal evaluations by ID, or those `filter` matches (one
    /// of the two; Nomad's rule). The answer holds `Count`.
    pub async fn delete(
        &self,
        ids: &[String],
        filter: Option<&str>,
        options: &WriteOptions,
    ) -> Result<Value, Error> {
        let body = serde_json::json!({"EvalIDs": ids, "Filter": filter.unwrap_or_default()});
        let (answer, _) = self
            .client
            .write(
                reqwest::Method::DELETE,
                "/v1/evaluations",
                Some(&body),
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }
}
