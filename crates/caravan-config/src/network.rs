//! Finding the address to advertise when the agent binds 0.0.0.0, as Nomad
//! does with go-sockaddr's `GetPrivateIP`.

use std::net::IpAddr;

/// The first private IPv4 address of an interface that is up, if any.
pub fn first_private_ip() -> Option<IpAddr> {
    let interfaces = nix::ifaddrs::getifaddrs().ok()?;
    let mut candidates: Vec<(String, IpAddr)> = interfaces
        .filter(|interface| {
            interface
                .flags
                .contains(nix::net::if_::InterfaceFlags::IFF_UP)
        })
        .filter_map(|interface| {
            let address = interface.address?;
            let ip = address.as_sockaddr_in()?.ip();
            (ip.is_private() && !ip.is_loopback())
                .then(|| (interface.interface_name.clone(), IpAddr::V4(ip)))
        })
        .collect();
    candidates.sort();
    candidates.first().map(|(_, ip)| *ip)
}
