//! `/v1/agent`: the agent answering, its cluster's members, joins.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! let members = client.agent().members().await?;
//! for member in &members.members {
//!     println!("{} {}", member.name, member.status);
//! }
//! # Ok(())
//! # }
//! ```

use caravan_api_types::agent::{AgentMembers, JoinResponse};
use reqwest::Method;
use serde_json::Value;

use crate::{Client, Error, QueryOptions, WriteOptions};

pub struct Agent<'a> {
    pub(crate) client: &'a Client,
}

impl Agent<'_> {
    /// `/v1/agent/self`: the agent's configuration, member and stats.
    pub async fn this(&self) -> Result<Value, Error> {
        let (me, _) = self
            .client
            .get("/v1/agent/self", &[], &QueryOptions::default())
            .await?;
        Ok(me)
    }

    /// The servers' gossip members.
    pub async fn members(&self) -> Result<AgentMembers, Error> {
        let (members, _) = self
            .client
            .get("/v1/agent/members", &[], &QueryOptions::default())
            .await?;
        Ok(members)
    }

    /// Joins this server to others at `addresses` (gossip `host:port`).
    pub async fn join(&self, addresses: &[&str]) -> Result<JoinResponse, Error> {
        let extra: Vec<(&str, String)> = addresses
            .iter()
            .map(|address| ("address", address.to_string()))
            .collect();
        let (joined, _) = self
            .client
            .write::<(), _>(
                Method::PUT,
                "/v1/agent/join",
                None,
                &extra,
                &WriteOptions::default(),
            )
            .await?;
        Ok(joined)
    }

    /// Marks a failed member left (`prune`: and forgets it at once).
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<(), Error> {
        let mut extra = vec![("node", node.to_string())];
        if prune {
            extra.push(("prune", "true".to_string()));
        }
        self.client
            .write::<(), Value>(
                Method::PUT,
                "/v1/agent/force-leave",
                None,
                &extra,
                &WriteOptions::default(),
            )
            .await?;
        Ok(())
    }
}
