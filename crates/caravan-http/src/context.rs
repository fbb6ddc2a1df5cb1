//! What every handler can reach: the agent's configuration and roles.

use std::sync::Arc;
use std::time::Instant;

use caravan_client::Client;
use caravan_config::AgentConfig;
use caravan_server::Server;

use crate::acl_check::AclCache;

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
    pub client: Option<Arc<Client>>,
    pub advertised: AdvertisedAddresses,
    /// For forwarding requests to other servers.
    pub http_client: reqwest::Client,
    pub started_at: Instant,
    pub acl_cache: AclCache,
}
