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
        let (answer, _) = self
            .client
            .write::<(), _>(
                Method::PUT,
                &format!("/v1/allocation/{id}/stop"),
                None,
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }
}
