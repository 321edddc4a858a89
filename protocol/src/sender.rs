//! Who a sender counts as for the relay's bounds (connections, registrations, ticket checks,
//! records): one address, where an IPv6 host's whole /64 is one.

use std::net::IpAddr;

/// The address limits count against: the IPv4 address, or the /64 of an IPv6 address (one
/// host usually has a whole /64 to pick addresses from).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}
