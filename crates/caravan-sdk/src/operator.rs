//! `/v1/operator`: Raft peers, autopilot and the scheduler's settings.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use caravan_sdk::QueryOptions;
//! let (raft, _) = client.operator().raft_configuration(&QueryOptions::default()).await?;
//! for server in raft.servers {
//!     println!("{} {} leader={}", server.node, server.address, server.leader);
//! }
//! # Ok(())
//! # }
//! ```

use caravan_api_types::operator::{
    AutopilotConfiguration, OperatorHealthReply, RaftConfiguration, SchedulerConfiguration,
    SchedulerConfigurationResponse, SchedulerSetConfigurationResponse,
};
use reqwest::Method;
use serde_json::Value;

use crate::{Client, Error, QueryMeta, QueryOptions, WriteOptions};

pub struct Operator<'a> {
    pub(crate) client: &'a Client,
}

impl Operator<'_> {
    pub async fn raft_configuration(
        &self,
        options: &QueryOptions,
    ) -> Result<(RaftConfiguration, QueryMeta), Error> {
        self.client
            .get("/v1/operator/raft/configuration", &[], options)
            .await
    }

    /// Removes a Raft peer by its ID.
    pub async fn raft_remove_peer(&self, id: &str, options: &WriteOptions) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::DELETE,
                "/v1/operator/raft/peer",
                None,
                &[("id", id.to_string())],
                options,
            )
            .await?;
        Ok(())
    }

    pub async fn autopilot_configuration(
        &self,
        options: &QueryOptions,
    ) -> Result<(AutopilotConfiguration, QueryMeta), Error> {
        self.client
            .get("/v1/operator/autopilot/configuration", &[], options)
            .await
    }

    pub async fn autopilot_health(
        &self,
        options: &QueryOptions,
    ) -> Result<(OperatorHealthReply, QueryMeta), Error> {
        self.client
            .get("/v1/operator/autopilot/health", &[], options)
            .await
    }

    pub async fn scheduler_configuration(
        &self,
        options: &QueryOptions,
    ) -> Result<(SchedulerConfigurationResponse, QueryMeta), Error> {
        self.client
            .get("/v1/operator/scheduler/configuration", &[], options)
            .await
    }

    pub async fn set_scheduler_configuration(
        &self,
        configuration: &SchedulerConfiguration,
        options: &WriteOptions,
    ) -> Result<SchedulerSetConfigurationResponse, Error> {
        let (answer, _) = self
            .client
            .write(
                Method::PUT,
                "/v1/operator/scheduler/configuration",
                Some(configuration),
                &[],
                options,
            )
            .await?;
        Ok(answer)
    }
}
