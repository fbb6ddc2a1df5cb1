//! Turning the addresses operators write (`10.0.0.1`, `10.0.0.1:4647`,
//! `[::1]`, `server-2`) into socket addresses, as Nomad does.

use std::net::{IpAddr, SocketAddr};

/// Why an address could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to resolve {address}: {reason}")]
pub struct ResolveError {
    pub address: String,
    pub reason: String,
}

/// An address that needs no lookup, or the `host:port` to look up.
fn literal_or_host(address: &str, default_port: u16) -> Result<SocketAddr, String> {
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
    Err(if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:{default_port}")
    })
}

/// Resolves `host[:port]` (IPv6 with or without brackets); a missing port
/// is `default_port`. Names are looked up without blocking the runtime.
pub async fn resolve(address: &str, default_port: u16) -> Result<SocketAddr, ResolveError> {
    let host = match literal_or_host(address, default_port) {
        Ok(socket) => return Ok(socket),
        Err(host) => host,
    };
    let failed = |reason: String| ResolveError {
        address: address.trim().to_string(),
        reason,
    };
    let mut found = tokio::net::lookup_host(host.as_str())
        .await
        .map_err(|error| failed(error.to_string()))?;
    found
        .next()
        .ok_or_else(|| failed("no addresses".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_need_no_lookup() {
        assert_eq!(
            resolve("10.0.0.1", 4647).await.unwrap(),
            "10.0.0.1:4647".parse().unwrap()
        );
        assert_eq!(
            resolve("10.0.0.1:5000", 4647).await.unwrap(),
            "10.0.0.1:5000".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]", 4647).await.unwrap(),
            "[::1]:4647".parse().unwrap()
        );
        assert_eq!(resolve("localhost", 4647).await.unwrap().port(), 4647);
        assert!(resolve("no-such-host.invalid", 4647).await.is_err());
    }
}
