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

    /// Removes a Raft peer by its RPC address (`ip:port`).
    pub async fn raft_remove_peer_by_address(
        &self,
        address: &str,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::DELETE,
                "/v1/operator/raft/peer",
                None,
                &[("address", address.to_string())],
                options,
            )
            .await?;
        Ok(())
    }

    /// Hands leadership to the voter with this ID.
    pub async fn raft_transfer_leadership_by_id(
        &self,
        id: &str,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        self.transfer_leadership(("id", id), options).await
    }

    /// Hands leadership to the voter at this RPC address (`ip:port`).
    pub async fn raft_transfer_leadership_by_address(
        &self,
        address: &str,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        self.transfer_leadership(("address", address), options)
            .await
    }

    async fn transfer_leadership(
        &self,
        (key, value): (&str, &str),
        options: &WriteOptions,
    ) -> Result<(), Error> {
        self.client
            .write::<(), Value>(
                Method::PUT,
                "/v1/operator/raft/transfer-leadership",
                None,
                &[(key, value.to_string())],
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

    /// Every server's health. An unhealthy cluster is answered with 429
    /// and the same body, which is returned here as a reply, not an error.
    pub async fn autopilot_health(
        &self,
        options: &QueryOptions,
    ) -> Result<(OperatorHealthReply, QueryMeta), Error> {
        match self
            .client
            .get("/v1/operator/autopilot/health", &[], options)
            .await
        {
            Err(Error::Api { status: 429, text }) => {
                Ok((serde_json::from_str(&text)?, QueryMeta::default()))
            }
            other => other,
        }
    }

    /// Writes `configuration` if autopilot's configuration is still at its
    /// `modify_index` (check-and-set); whether it was written.
    pub async fn cas_autopilot_configuration(
        &self,
        configuration: &AutopilotConfiguration,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        let (applied, _) = self
            .client
            .write(
                Method::PUT,
                "/v1/operator/autopilot/configuration",
                Some(configuration),
                &[("cas", configuration.modify_index.to_string())],
                options,
            )
            .await?;
        Ok(applied)
    }

    /// Writes `configuration` if the scheduler's configuration is still at
    /// its `modify_index` (check-and-set).
    pub async fn cas_scheduler_configuration(
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
                &[("cas", configuration.modify_index.to_string())],
                options,
            )
            .await?;
        Ok(answer)
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
