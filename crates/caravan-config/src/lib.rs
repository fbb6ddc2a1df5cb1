//! The agent's configuration: Nomad's keys from HCL and JSON files, Nomad's
//! command-line flags, and the defaults of `agent -dev`.
//!
//! Precedence follows Nomad: built-in defaults (or the dev defaults), then
//! each `-config` file in order, then flags.
//!
//! One module per thing configured (`server`, `client`, `acl`, `addresses`,
//! `limits`, `tls`), `agent` for the whole and the order things apply in,
//! `file` and `flags` for the two sources, `merge` for laying one over the
//! other. This root only re-exports, so no module depends on it.

mod acl;
mod addresses;
mod agent;
mod client;
mod duration;
mod error;
pub mod file;
pub mod flags;
pub mod limits;
mod merge;
mod network;
mod server;
pub mod telemetry;
pub mod tls;

pub use acl::AclConfig;
pub use addresses::{
    Addresses, AdvertiseAddrs, Ports, DEFAULT_HTTP_PORT, DEFAULT_RPC_PORT, DEFAULT_SERF_PORT,
};
pub use agent::AgentConfig;
pub use client::{ClientConfig, HostVolume, Reserved};
pub use error::ConfigError;
pub use network::first_private_ip;
pub use server::{decode_gossip_key, ServerConfig};

#[cfg(test)]
mod tests;
