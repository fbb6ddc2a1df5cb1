//! The client's list of known servers.

use std::net::SocketAddr;
use std::sync::RwLock;

use caravan_api_types::sync::{read, write};
use std::time::Duration;

use caravan_rpc::paths::PING as PING_PATH;
use caravan_rpc::CallError;

/// Servers listen for RPC here unless told otherwise.
pub const DEFAULT_RPC_PORT: u16 = 4647;
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a new server list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerListError {
    #[error("missing server address")]
    Empty,
    #[error("{0}")]
    NoneReachable(String),
}

/// The servers a client talks to, as `ip:port` RPC addresses.
pub struct ServerList {
    servers: RwLock<Vec<String>>,
    rpc_client: caravan_rpc::RpcClient,
}

impl ServerList {
    pub async fn new(servers: Vec<String>, rpc_client: caravan_rpc::RpcClient) -> Self {
        let mut resolved = Vec::new();
        for server in &servers {
            match resolve(server).await {
                Ok(address) => resolved.push(address.to_string()),
                Err(error) => tracing::warn!(%error, "ignoring a server address"),
            }
        }
        let mut servers = resolved;
        servers.sort();
        servers.dedup();
        Self {
            servers: RwLock::new(servers),
            rpc_client,
        }
    }

    /// The known servers, the one that last answered first.
    pub fn get(&self) -> Vec<String> {
        read(&self.servers).clone()
    }

    /// Moves `server` to the front: the one that answered is tried first.
    pub fn promote(&self, server: &str) {
        let mut servers = write(&self.servers);
        if let Some(position) = servers.iter().position(|known| known == server) {
            let found = servers.remove(position);
            servers.insert(0, found);
        }
    }

    /// Calls `call` against the known servers in turn, the one that last
    /// answered first, until one answers; that one moves to the front. An
    /// error the server answered with that no other server would answer
    /// differently (a bad secret, say) ends the round at once.
    pub async fn call_with_failover<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let mut last = CallError::Unreachable {
            server: String::new(),
            message: "no known servers".to_string(),
        };
        for server in self.get() {
            match call(server.clone()).await {
                Ok(reply) => {
                    self.promote(&server);
                    return Ok(reply);
                }
                Err(error) if !error.is_retryable() => return Err(error),
                Err(error) => {
                    tracing::warn!(%server, %error, "server unreachable; trying the next");
                    last = error;
                }
            }
        }
        Err(last)
    }

    /// Adds servers a server told us about (Nomad's clients learn the
    /// cluster's servers from heartbeat answers).
    pub fn learn(&self, addresses: &[String]) {
        let mut servers = write(&self.servers);
        for address in addresses {
            if !servers.contains(address) {
                servers.push(address.clone());
            }
        }
    }

    /// Replaces the list with those of `addresses` that answer a ping;
    /// refuses the change when none does.
    pub async fn replace(&self, addresses: &[String]) -> Result<(), ServerListError> {
        if addresses.is_empty() {
            return Err(ServerListError::Empty);
        }
        let checks = addresses.iter().map(|address| self.ping(address));
        let mut reachable = Vec::new();
        let mut errors = Vec::new();
        for outcome in futures::future::join_all(checks).await {
            match outcome {
                Ok(address) => reachable.push(address.to_string()),
                Err(error) => errors.push(error),
            }
        }
        if reachable.is_empty() {
            let message = if errors.is_empty() {
                "no servers".to_string()
            } else {
                errors.join("; ")
            };
            return Err(ServerListError::NoneReachable(message));
        }
        reachable.sort();
        reachable.dedup();
        *write(&self.servers) = reachable;
        Ok(())
    }

    async fn ping(&self, address: &str) -> Result<SocketAddr, String> {
        let resolved = resolve(address).await?;
        let response = self
            .rpc_client
            .http()
            .get(self.rpc_client.url(&resolved.to_string(), PING_PATH))
            .timeout(PING_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("failed to ping server {resolved}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "server {resolved} answered the ping with {}",
                response.status()
            ));
        }
        Ok(resolved)
    }
}

/// Resolves `host[:port]`, defaulting the port to 4647 as Nomad does,
/// without blocking the runtime on DNS.
pub async fn resolve(address: &str) -> Result<SocketAddr, String> {
    caravan_rpc::address::resolve(address, DEFAULT_RPC_PORT)
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_client() -> caravan_rpc::RpcClient {
        // No call in these tests reaches the network; the list only needs
        // a client to hold.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(caravan_tls::no_tls_client_config())
            .build()
            .unwrap();
        caravan_rpc::RpcClient::new(http, None)
    }

    #[tokio::test]
    async fn failover_tries_the_next_server_and_remembers_the_one_that_answered() {
        let servers = ServerList::new(
            vec!["10.0.0.1:4647".to_string(), "10.0.0.2:4647".to_string()],
            list_client(),
        )
        .await;
        let tried = std::sync::Mutex::new(Vec::new());
        let answer = servers
            .call_with_failover(|server| {
                tried.lock().unwrap().push(server.clone());
                async move {
                    if server == "10.0.0.1:4647" {
                        Err(CallError::Unreachable {
                            server,
                            message: "refused".to_string(),
                        })
                    } else {
                        Ok(server)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(answer, "10.0.0.2:4647");
        assert_eq!(tried.lock().unwrap().len(), 2);
        assert_eq!(
            servers.get()[0],
            "10.0.0.2:4647",
            "the one that answered first"
        );

        // An answer no other server would change ends the round at once.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let refused: Result<(), CallError> = servers
            .call_with_failover(|_| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err(CallError::Remote(caravan_rpc::RpcError::NodeNotFound)) }
            })
            .await;
        assert!(matches!(
            refused,
            Err(CallError::Remote(caravan_rpc::RpcError::NodeNotFound))
        ));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn resolves_with_default_port() {
        assert_eq!(
            resolve("10.0.0.1").await.unwrap().to_string(),
            "10.0.0.1:4647"
        );
        assert_eq!(
            resolve("10.0.0.1:99").await.unwrap().to_string(),
            "10.0.0.1:99"
        );
        assert_eq!(resolve("::1").await.unwrap().to_string(), "[::1]:4647");
        assert_eq!(resolve("[::1]").await.unwrap().to_string(), "[::1]:4647");
        assert_eq!(resolve("[::1]:7").await.unwrap().to_string(), "[::1]:7");
        assert!(resolve("host:notaport").await.is_err());
    }
}
