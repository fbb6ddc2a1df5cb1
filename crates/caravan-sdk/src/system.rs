//! `/v1/system`: garbage collection on demand and job summaries counted
//! again, the maintenance calls of Nomad's `api.System()`. Both need a
//! management token when ACLs are enabled.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::WriteOptions;
//! let written = client.system().gc(&WriteOptions::default()).await?;
//! println!("collected at index {}", written.last_index);
//! client.system().reconcile_summaries(&WriteOptions::default()).await?;
//! # Ok(())
//! # }
//! ```

use reqwest::Method;
use serde_json::Value;

use crate::{Client, Error, WriteMeta, WriteOptions};

pub struct System<'a> {
    pub(crate) client: &'a Client,
}

impl System<'_> {
    /// Collects every finished job, evaluation and allocation, down node
    /// and expired token now, whatever its age (Nomad's
    /// `GarbageCollect`). The index it was written at is 0 when there was
    /// nothing to collect. Nomad only queues the collection; Caravan
    /// answers once it is written, so the next read no longer sees it.
    pub async fn gc(&self, options: &WriteOptions) -> Result<WriteMeta, Error> {
        self.put("/v1/system/gc", options).await
    }

    /// Counts every job's summary again from its allocations (Nomad's
    /// `ReconcileSummaries`).
    pub async fn reconcile_summaries(&self, options: &WriteOptions) -> Result<WriteMeta, Error> {
        self.put("/v1/system/reconcile/summaries", options).await
    }

    /// A `PUT` with no body whose answer is empty.
    async fn put(&self, path: &str, options: &WriteOptions) -> Result<WriteMeta, Error> {
        let (_, meta) = self
            .client
            .write::<(), Value>(Method::PUT, path, None, &[], options)
            .await?;
        Ok(meta)
    }
}
