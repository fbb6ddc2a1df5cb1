//! What every handler can reach: the agent's configuration and roles.

use std::sync::Arc;
use std::time::Instant;

use caravan_client::Client;
use caravan_config::AgentConfig;
use caravan_server::Server;

use caravan_api_types::sync::lock;

use crate::acl_cache::AclCache;
use crate::node_stubs::NodeStubCache;

/// The addresses this agent advertises, resolved after its listeners bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedAddresses {
    pub http: String,
    pub rpc: String,
    pub serf: String,
}

/// The running agent as the API sees it.
pub struct AgentContext {
    pub config: Arc<AgentConfig>,
    pub server: Option<Arc<Server>>,
    /// Servers gossip with each other; clients do not.
    pub gossip: Option<Arc<caravan_server::gossip::Gossip>>,
    pub client: Option<Arc<Client>>,
    pub advertised: AdvertisedAddresses,
    /// For forwarding requests to other servers.
    pub http_client: reqwest::Client,
    /// For forwarding writes: never reuses a connection (see agent.rs).
    pub write_client: reqwest::Client,
    pub started_at: Instant,
    pub acl_cache: AclCache,
    /// Encoded answers of large lists, reused while their table is unchanged.
    pub list_cache: ListCache,
    /// Each node's encoded `/v1/nodes` entry, reused while the node is
    /// unchanged (what a list is built from when the table has moved).
    pub node_stubs: NodeStubCache,
}

/// Encoded list answers keyed by their query, valid for one table index.
/// The state is immutable at a given index, so an answer computed for it
/// stays right until the table moves.
#[derive(Default)]
pub struct ListCache {
    entries: std::sync::Mutex<(u64, std::collections::HashMap<String, CachedList>)>,
}

/// An encoded page and its next-page token.
pub type CachedList = (bytes::Bytes, Option<String>);

impl ListCache {
    const MAX_ENTRIES: usize = 32;

    pub fn get(&self, key: &str, index: u64) -> Option<CachedList> {
        let entries = lock(&self.entries);
        (entries.0 == index)
            .then(|| entries.1.get(key).cloned())
            .flatten()
    }

    pub fn put(&self, key: String, index: u64, value: CachedList) {
        let mut entries = lock(&self.entries);
        if entries.0 != index || entries.1.len() >= Self::MAX_ENTRIES {
            *entries = (index, std::collections::HashMap::new());
        }
        entries.1.insert(key, value);
    }
}
