//! TLS as Nomad has it, with rustls (ring provider).
//!
//! - [`TlsSettings`]: the agent's `tls {}` block.
//! - [`AgentTls`]: the loaded CA and this agent's certificate and key; the
//!   certificate and key are reloaded on SIGHUP ([`AgentTls::reload`])
//!   without dropping connections, since both the server and the client
//!   side resolve the certificate per handshake.
//! - Names: servers present `server.<region>.nomad`, clients
//!   `client.<region>.nomad` (Nomad's convention). With
//!   `verify_server_hostname` an outgoing RPC connection accepts only a
//!   certificate valid for `server.<region>.nomad`, whatever address it
//!   dialled; without it, any certificate signed by the CA.
//! - [`peer_is_server`]: whether a peer's certificate names a server of
//!   this region, which is what server-only RPC routes require under TLS.
//! - [`generate`]: `caravan tls ca create` and `caravan tls cert create`.

use std::sync::Arc;

pub mod generate;
mod load;
mod verify;

pub use load::{AgentTls, TlsError, TlsSettings};
pub use verify::peer_is_server;

/// Makes ring the process's rustls provider. Every program that builds an
/// HTTP client calls this first: reqwest is built without a provider of
/// its own (one crypto library, not two), so it needs the process default.
pub fn install_default_provider() {
    // An error only says a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS configuration of an HTTP client that never speaks HTTPS (no
/// `tls.rpc`): no roots at all. Without it reqwest loads the system's CA
/// store, which a minimal container does not have, and refuses to build.
pub fn no_tls_client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// The name every server certificate of `region` carries.
pub fn server_name(region: &str, domain: &str) -> String {
    format!("server.{region}.{domain}")
}

/// The name every client certificate of `region` carries.
pub fn client_name(region: &str, domain: &str) -> String {
    format!("client.{region}.{domain}")
}
