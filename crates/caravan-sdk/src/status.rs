//! `/v1/status`: the cluster's leader and peers.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! let peers = client.status().peers().await?;
//! assert!(peers.contains(&client.status().leader().await?));
//! # Ok(())
//! # }
//! ```

use crate::{Client, Error, QueryOptions};

pub struct Status<'a> {
    pub(crate) client: &'a Client,
}

impl Status<'_> {
    /// The leader's RPC address (`host:port`), empty without a leader.
    pub async fn leader(&self) -> Result<String, Error> {
        let (leader, _) = self
            .client
            .get("/v1/status/leader", &[], &QueryOptions::default())
            .await?;
        Ok(leader)
    }

    /// The Raft peers' RPC addresses.
    pub async fn peers(&self) -> Result<Vec<String>, Error> {
        let (peers, _) = self
            .client
            .get("/v1/status/peers", &[], &QueryOptions::default())
            .await?;
        Ok(peers)
    }

    /// The leader of `region` (`host:port`), as `server members` asks for
    /// each region it sees.
    pub async fn region_leader(&self, region: &str) -> Result<String, Error> {
        let options = QueryOptions {
            region: Some(region.to_string()),
            ..QueryOptions::default()
        };
        let (leader, _) = self.client.get("/v1/status/leader", &[], &options).await?;
        Ok(leader)
    }

    /// The regions the servers know (`GET /v1/regions`), sorted.
    pub async fn regions(&self) -> Result<Vec<String>, Error> {
        let (regions, _) = self
            .client
            .get("/v1/regions", &[], &QueryOptions::default())
            .await?;
        Ok(regions)
    }
}
