//! `/v1/allocations` and `/v1/allocation/:id`.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::QueryOptions;
//! let (allocations, _) = client.allocations().list(&QueryOptions::default()).await?;
//! for stub in allocations {
//!     println!("{} {}", stub.id, stub.client_status);
//! }
//! # Ok(())
//! # }
//! ```

use caravan_api_types::alloc::{AllocListStub, Allocation};
use reqwest::Method;
use serde_json::Value;

use crate::{Client, Error, QueryMeta, QueryOptions, WriteOptions};

pub struct Allocations<'a> {
    pub(crate) client: &'a Client,
}

impl Allocations<'_> {
    pub async fn list(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.client.get("/v1/allocations", &[], options).await
    }

    /// One allocation, by its full ID.
    pub async fn info(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Allocation, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/allocation/{id}"), &[], options)
            .await
    }

    /// Stops the allocation; its job places a replacement.
    pub async fn stop(&self, id: &str, options: &WriteOptions) -> Result<Value, Error> {
        self.stop_with(id, false, false, options).await
    }

    /// Stops the allocation; `reschedule` asks for a replacement even for a
    /// batch job's allocation, `no_shutdown_delay` skips the group's
    /// shutdown delay. The answer carries the stop's `EvalID`.
    pub async fn stop_with(
        &self,
        id: &str,
        reschedule: bool,
        no_shutdown_delay: bool,
        options: &WriteOptions,
    ) -> Result<Value, Error> {
        let mut extra = Vec::new();
        if reschedule {
            extra.push(("reschedule", "true".to_string()));
        }
        if no_shutdown_delay {
            extra.push(("no_shutdown_delay", "true".to_string()));
        }
        let (answer, _) = self
            .client
            .write::<(), _>(
                Method::PUT,
                &format!("/v1/allocation/{id}/stop"),
                None,
                &extra,
                options,
            )
            .await?;
        Ok(answer)
    }
}
