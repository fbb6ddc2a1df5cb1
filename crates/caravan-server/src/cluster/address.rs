//! Turning the addresses operators write (`10.0.0.1`, `10.0.0.1:4647`,
//! `[::1]`, `server-2`) into socket addresses, as Nomad does.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Resolves `host[:port]` (IPv6 with or without brackets); a missing port
/// is `default_port`.
pub fn resolve(address: &str, default_port: u16) -> Result<SocketAddr, String> {
    let address = address.trim();
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return Ok(socket);
    }
    if let Ok(ip) = address
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:{default_port}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|error| format!("failed to resolve {address}: {error}"))?
        .next()
        .ok_or_else(|| format!("failed to resolve {address}: no addresses"))
}
