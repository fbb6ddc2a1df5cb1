//! Where the agent listens (`bind_addr`, `addresses`, `ports`) and what it
//! advertises (`advertise`).

use std::net::IpAddr;

pub const DEFAULT_HTTP_PORT: u16 = 4646;
pub const DEFAULT_RPC_PORT: u16 = 4647;
pub const DEFAULT_SERF_PORT: u16 = 4648;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub rpc: u16,
    pub serf: u16,
}

/// The address each listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub http: IpAddr,
    pub rpc: IpAddr,
    pub serf: IpAddr,
}

/// What the agent tells others to reach it on; unset parts are derived from
/// the bind addresses once the listeners are bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertiseAddrs {
    pub http: Option<String>,
    pub rpc: Option<String>,
    pub serf: Option<String>,
}
