//! `/v1/nodes` and `/v1/node/:id`: the client nodes, their allocations,
//! drains and eligibility.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::QueryOptions;
//! let (nodes, _) = client.nodes().list(&QueryOptions::default()).await?;
//! for node in nodes {
//!     println!("{} {} {}", node.id, node.name, node.status);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::node::{DrainSpec, Node, NodeDrainUpdateResponse, NodeListStub};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{Client, Error, QueryMeta, QueryOptions, WriteMeta, WriteOptions};

pub struct Nodes<'a> {
    pub(crate) client: &'a Client,
}

impl Nodes<'_> {
    /// Every node (`prefix` and `filter` in `options` narrow it).
    pub async fn list(
        &self,
        options: &QueryOptions,
    ) -> Result<(Vec<NodeListStub>, QueryMeta), Error> {
        self.client.get("/v1/nodes", &[], options).await
    }

    /// One node, by its full ID.
    pub async fn info(&self, id: &str, options: &QueryOptions) -> Result<(Node, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/node/{id}"), &[], options)
            .await
    }

    /// The node's allocations.
    pub async fn allocations(
        &self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<Allocation>, QueryMeta), Error> {
        self.client
            .get(&format!("/v1/node/{id}/allocations"), &[], options)
            .await
    }

    /// Starts a drain with `spec`, or ends one (`None`); `mark_eligible`
    /// makes the node eligible again when a drain is cancelled.
    pub async fn drain(
        &self,
        id: &str,
        spec: Option<DrainSpec>,
        mark_eligible: bool,
        options: &WriteOptions,
    ) -> Result<NodeDrainUpdateResponse, Error> {
        let (answer, _) = self
            .drain_with(id, spec, mark_eligible, None, options)
            .await?;
        Ok(answer)
    }

    /// [`Nodes::drain`] with the drain's `meta` (kept in `LastDrain`), and
    /// the index the write was applied at (to watch the drain from).
    pub async fn drain_with(
        &self,
        id: &str,
        spec: Option<DrainSpec>,
        mark_eligible: bool,
        meta: Option<BTreeMap<String, String>>,
        options: &WriteOptions,
    ) -> Result<(NodeDrainUpdateResponse, WriteMeta), Error> {
        let body = json!({
            "NodeID": id,
            "DrainSpec": spec,
            "MarkEligible": mark_eligible,
            "Meta": meta,
        });
        self.client
            .write(
                Method::PUT,
                &format!("/v1/node/{id}/drain"),
                Some(&body),
                &[],
                options,
            )
            .await
    }

    /// Makes the node eligible for new work, or not.
    pub async fn eligibility(
        &self,
        id: &str,
        eligible: bool,
        options: &WriteOptions,
    ) -> Result<NodeDrainUpdateResponse, Error> {
        // The answer has the drain write's shape (Nomad's
        // `NodeEligibilityUpdateResponse`), not a full node update's.
        let eligibility = if eligible { "eligible" } else { "ineligible" };
        let body = json!({"NodeID": id, "Eligibility": eligibility});
        let (answer, _) = self
            .client
            .write(
                Method::PUT,
                &format!("/v1/node/{id}/eligibility"),
                Some(&body),
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }

    /// Removes a node from the cluster's state.
    pub async fn purge(&self, id: &str, options: &WriteOptions) -> Result<Value, Error> {
        let (answer, _) = self
            .client
            .write::<(), _>(
                Method::PUT,
                &format!("/v1/node/{id}/purge"),
                None,
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }

    /// A new evaluation of every job with allocations on the node
    /// (`POST /v1/node/:id/evaluate`); the answer holds `EvalIDs`.
    pub async fn evaluate(&self, id: &str, options: &WriteOptions) -> Result<Value, Error> {
        let (answer, _) = self
            .client
            .write::<(), _>(
                Method::POST,
                &format!("/v1/node/{}/evaluate", crate::jobs::escape(id)),
                None,
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }
}
