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

use caravan_api_types::agent::{AgentMembers, JoinResponse, KeyringRequest, KeyringResponse};
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

    /// `GET /v1/agent/servers`: the servers a client agent knows (RPC
    /// `host:port`).
    pub async fn servers(&self) -> Result<Vec<String>, Error> {
        let (servers, _) = self
            .client
            .get("/v1/agent/servers", &[], &QueryOptions::default())
            .await?;
        Ok(servers)
    }

    /// `PUT /v1/agent/servers`: replaces a client agent's server list.
    pub async fn set_servers(&self, addresses: &[&str]) -> Result<(), Error> {
        let extra: Vec<(&str, String)> = addresses
            .iter()
            .map(|address| ("address", address.to_string()))
            .collect();
        self.client
            .write::<(), Value>(
                Method::PUT,
                "/v1/agent/servers",
                None,
                &extra,
                &WriteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// `GET /v1/agent/keyring/list`: the gossip encryption keys installed.
    pub async fn keyring_list(&self) -> Result<KeyringResponse, Error> {
        let (keys, _) = self
            .client
            .get("/v1/agent/keyring/list", &[], &QueryOptions::default())
            .await?;
        Ok(keys)
    }

    /// Installs a gossip encryption key (base64), not yet used to encrypt.
    pub async fn keyring_install(&self, key: &str) -> Result<KeyringResponse, Error> {
        self.keyring_write("/v1/agent/keyring/install", key).await
    }

    /// Makes an installed key the one gossip encrypts with.
    pub async fn keyring_use(&self, key: &str) -> Result<KeyringResponse, Error> {
        self.keyring_write("/v1/agent/keyring/use", key).await
    }

    /// Removes an installed key (not the one in use).
    pub async fn keyring_remove(&self, key: &str) -> Result<KeyringResponse, Error> {
        self.keyring_write("/v1/agent/keyring/remove", key).await
    }

    async fn keyring_write(&self, path: &str, key: &str) -> Result<KeyringResponse, Error> {
        let body = KeyringRequest {
            key: key.to_string(),
        };
        let (answer, _) = self
            .client
            .write::<_, Option<KeyringResponse>>(
                Method::PUT,
                path,
                Some(&body),
                &[],
                &WriteOptions::default(),
            )
            .await?;
        Ok(answer.unwrap_or_default())
    }

    /// Whether this agent's server and client are healthy
    /// (`GET /v1/agent/health`; a 500 is an unhealthy part).
    pub async fn health(&self) -> Result<Value, Error> {
        match self
            .client
            .get("/v1/agent/health", &[], &QueryOptions::default())
            .await
        {
            Ok((health, _)) => Ok(health),
            // Unhealthy: the answer still says which part and why.
            Err(Error::Api { status: 500, text }) => Ok(serde_json::from_str(&text)?),
            Err(error) => Err(error),
        }
    }
}
