//! What one side of a session tells the other, under the pairing key's MAC, about how to reach
//! it: its endpoint id (the public key its end-to-end connection authenticates with) and the
//! direct addresses it knows of. The relay carries this but cannot change it unnoticed.

use crate::wire::{DecodeError, Reader, Writer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// At most this many direct addresses travel in one confirmation: a PC has a few interfaces,
/// and the connection itself finds further candidates.
pub const MAX_DIRECT_ADDRS: usize = 8;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// An endpoint id (ed25519 public key) and the direct addresses it may be reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEndpoint {
    /// The 32-byte public key the peer's end-to-end connection must prove.
    pub id: [u8; 32],
    /// Addresses to try directly; hints only, the id is what counts.
    pub direct_addrs: Vec<SocketAddr>,
}

impl PeerEndpoint {
    /// Appends the encoding; addresses beyond [`MAX_DIRECT_ADDRS`] are left out.
    pub fn encode_into(&self, w: &mut Writer) {
        w.bytes(&self.id);
        let addrs = &self.direct_addrs[..self.direct_addrs.len().min(MAX_DIRECT_ADDRS)];
        w.u8(addrs.len() as u8);
        for a in addrs {
            match a.ip() {
                IpAddr::V4(ip) => w.u8(FAMILY_V4).bytes(&ip.octets()),
                IpAddr::V6(ip) => w.u8(FAMILY_V6).bytes(&ip.octets()),
            };
            w.u16(a.port());
        }
    }

    /// The encoding alone, as the key confirmation's MAC covers it.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.finish()
    }

    /// Reads one encoding; refuses more than [`MAX_DIRECT_ADDRS`] addresses.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.array::<32>()?;
        let n = r.u8()? as usize;
        if n > MAX_DIRECT_ADDRS {
            return Err(DecodeError::TooLarge {
                what: "direct address list",
                len: n,
                max: MAX_DIRECT_ADDRS,
            });
        }
        let mut direct_addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ip = match r.u8()? {
                FAMILY_V4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "address family",
                        tag,
                    })
                }
            };
            direct_addrs.push(SocketAddr::new(ip, r.u16()?));
        }
        Ok(Self { id, direct_addrs })
    }
}

/// How the session's end-to-end connection travels at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Through the relay (its HTTPS/TCP path); the relay forwards packets it cannot read.
    Relayed,
    /// Straight between the two PCs' networks, through their NATs.
    Direct,
    /// Straight within one local network.
    DirectLan,
}

impl PathKind {
    /// The byte this kind travels as.
    pub fn tag(self) -> u8 {
        match self {
            PathKind::Relayed => 1,
            PathKind::Direct => 2,
            PathKind::DirectLan => 3,
        }
    }

    /// The kind a byte stands for.
    pub fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => PathKind::Relayed,
            2 => PathKind::Direct,
            3 => PathKind::DirectLan,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "path kind",
                    tag,
                })
            }
        })
    }

    /// The name status lines, logs and the session record use.
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Relayed => "relayed",
            PathKind::Direct => "direct",
            PathKind::DirectLan => "direct LAN",
        }
    }
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let p = PeerEndpoint {
            id: [7; 32],
            direct_addrs: vec![
                "192.0.2.1:4242".parse().unwrap(),
                "[2001:db8::1]:443".parse().unwrap(),
            ],
        };
        let bytes = p.encode();
        let mut r = Reader::new(&bytes);
        assert_eq!(PeerEndpoint::decode_from(&mut r).unwrap(), p);
        r.finish().unwrap();

        let many = PeerEndpoint {
            id: [1; 32],
            direct_addrs: vec!["10.0.0.1:1".parse().unwrap(); 20],
        };
        let bytes = many.encode();
        let got = PeerEndpoint::decode_from(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(got.direct_addrs.len(), MAX_DIRECT_ADDRS);

        let mut hostile = [0u8; 33].to_vec();
        hostile[32] = 200;
        assert!(PeerEndpoint::decode_from(&mut Reader::new(&hostile)).is_err());
    }
}
