//! The client address that sign-in throttling and the logs use.
//!
//! By default it is the TCP peer address, and `X-Forwarded-For` is ignored: any client can
//! write that header. Behind a reverse proxy, `--trusted-proxy` names the proxies' addresses
//! (IP addresses or CIDR ranges); for a request whose peer is one of them, the address is
//! taken from `X-Forwarded-For`, `--proxy-hops` entries from the right (1: the entry the
//! nearest proxy appended). A request from a trusted proxy with too short a header falls back
//! to the peer address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::AppState;

/// An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { net, prefix })
    }
}

impl IpRange {
    fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            let host_bits = u32::from(width - prefix);
            if host_bits >= 128 {
                0
            } else {
                bits >> host_bits
            }
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), 32, self.prefix)
                    == masked(u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(n.into(), 128, self.prefix) == masked(a.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Where client addresses come from.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientAddrSource {
    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) trusted: Vec<IpRange>,
    /// Which `X-Forwarded-For` entry, counted from the right (1 = the last).
    pub(crate) hops: usize,
}

impl ClientAddrSource {
    /// The client address of a request from `peer` with `headers`.
    pub(crate) fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted.iter().any(|r| r.contains(peer)) {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let hops = self.hops.max(1);
        entries
            .len()
            .checked_sub(hops)
            .and_then(|i| entries.get(i))
            .and_then(|e| e.parse::<IpAddr>().ok())
            .unwrap_or(peer)
    }
}

/// The client address of the request (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Self(state.client_addrs.resolve(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn range(s: &str) -> IpRange {
        s.parse().unwrap_or(IpRange {
            net: IpAddr::from([255, 255, 255, 255]),
            prefix: 32,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert("x-forwarded-for", v);
        }
        h
    }

    #[test]
    fn ranges() {
        assert!(range("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(range("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(range("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(range("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(range("fd00::/8").contains(ip("fd12::1")));
        assert!(!range("fd00::/8").contains(ip("10.0.0.1")));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("proxy".parse::<IpRange>().is_err());
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = ClientAddrSource::default();
        assert_eq!(
            none.resolve(ip("192.0.2.1"), &xff("1.2.3.4")),
            ip("192.0.2.1")
        );
        let src = ClientAddrSource {
            trusted: vec![range("127.0.0.1")],
            hops: 1,
        };
        assert_eq!(
            src.resolve(ip("192.0.2.1"), &xff("1.2.3.4")),
            ip("192.0.2.1")
        );
        assert_eq!(src.resolve(ip("127.0.0.1"), &xff("1.2.3.4")), ip("1.2.3.4"));
        // A client-written entry to the left of the proxy's is not believed.
        assert_eq!(
            src.resolve(ip("127.0.0.1"), &xff("6.6.6.6, 1.2.3.4")),
            ip("1.2.3.4")
        );
        let two = ClientAddrSource { hops: 2, ..src };
        assert_eq!(
            two.resolve(ip("127.0.0.1"), &xff("1.2.3.4, 10.0.0.2")),
            ip("1.2.3.4")
        );
        assert_eq!(
            two.resolve(ip("127.0.0.1"), &xff("10.0.0.2")),
            ip("127.0.0.1")
        );
        assert_eq!(
            two.resolve(ip("127.0.0.1"), &xff("junk, x")),
            ip("127.0.0.1")
        );
    }
}
