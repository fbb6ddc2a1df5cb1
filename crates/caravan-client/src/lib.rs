//! The client role of a Caravan agent.
//!
//! For now it keeps the list of servers the client talks to, which
//! `/v1/agent/servers` reads and replaces; registration, heartbeats and
//! drivers build on it.

mod servers;

pub use servers::{ServerList, ServerListError, DEFAULT_RPC_PORT};

/// A running client agent.
pub struct Client {
    servers: ServerList,
}

impl Client {
    pub fn new(servers: Vec<String>, rpc_client: reqwest::Client) -> Self {
        Self {
            servers: ServerList::new(servers, rpc_client),
        }
    }

    /// The servers this client knows.
    pub fn servers(&self) -> &ServerList {
        &self.servers
    }
}
