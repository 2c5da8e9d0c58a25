//! [`ClientAddr`]: the address of the client a request came from, for security events and the
//! guessing throttle.
//!
//! The layer reads it once per request:
//!
//! 1. The peer address of the connection: axum's `ConnectInfo<SocketAddr>` (feature `axum`,
//!    on by default; serve with `into_make_service_with_connect_info::<SocketAddr>()`), or a
//!    plain [`SocketAddr`] request extension that any tower or hyper server can insert.
//! 2. Only when the peer is one of the configured trusted proxies
//!    ([`SessionConfigBuilder::trusted_proxies`](crate::SessionConfigBuilder::trusted_proxies)):
//!    the entry of `X-Forwarded-For` (or `Forwarded`) that the proxies wrote, counted `hops`
//!    entries from the right. Any client can write these headers, so nothing is believed by
//!    default, and never from a peer that is not a trusted proxy.
//!
//! The header rule, exactly: the entries of every field of the header, in order, form one
//! list. With `hops = 1` the client is the last entry (the one the nearest proxy appended);
//! with `hops = n`, the n-th from the right (n proxies in a chain, each appending the address
//! it saw). Only those `n` entries are examined (at most [`MAX_PROXY_HOPS`]), each at most a
//! few hundred bytes. When the header is missing, has fewer than `n` entries, or one of the
//! `n` is not a plain IP address (`unknown`, an obfuscated `_name`, junk, an over-long
//! entry), the client address is the peer's: a malformed header never names a client and
//! never fails the request. IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Extensions, HeaderMap, StatusCode};

/// The most proxy hops a configuration may name (and so the most header entries examined).
pub const MAX_PROXY_HOPS: usize = 16;

/// Longest `X-Forwarded-For` entry read (`[v6]:port` is at most 47 bytes).
const MAX_XFF_ENTRY: usize = 64;
/// Longest `Forwarded` element read, and the most `name=value` pairs in it.
const MAX_FORWARDED_ELEMENT: usize = 256;
const MAX_FORWARDED_PAIRS: usize = 8;

/// The address of the client a request came from: the connection's peer, or what a trusted
/// proxy says (the rules are on [`SessionConfigBuilder::trusted_proxies`]; by default the
/// peer, whatever the headers say).
///
/// The [`SessionLayer`](crate::SessionLayer) puts it in the request extensions when the peer
/// address is known; handlers take it as an extractor (or `Option<ClientAddr>`), or ask the
/// session ([`Session::client_addr`](crate::Session::client_addr)). Security events carry it
/// as the field `client`, and the guessing throttle keys on it.
///
/// ```no_run
/// use sessionward::ClientAddr;
///
/// async fn whoami(client: ClientAddr) -> String {
///     format!("you are {client}")
/// }
/// ```
///
/// [`SessionConfigBuilder::trusted_proxies`]: crate::SessionConfigBuilder::trusted_proxies
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// The address (IPv4-mapped IPv6 addresses are given as IPv4).
    #[must_use]
    pub fn ip(self) -> IpAddr {
        self.0
    }

    pub(crate) fn new(ip: IpAddr) -> Self {
        Self(ip.to_canonical())
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ClientAddr> for IpAddr {
    fn from(c: ClientAddr) -> Self {
        c.0
    }
}

/// The rejection of the [`ClientAddr`] extractor: the request has no known peer address.
/// A 500, since it is a server setup mistake, with a message that names the fix.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct MissingClientAddr;

impl MissingClientAddr {
    /// 500.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The text of the response.
    #[must_use]
    pub fn body_text(&self) -> &'static str {
        MISSING_CLIENT_ADDR
    }
}

const MISSING_CLIENT_ADDR: &str = "The client address is not available: the connection's peer \
address is unknown. Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` \
(or insert a `SocketAddr` request extension), and put this route inside `SessionLayer`.";

impl fmt::Display for MissingClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MISSING_CLIENT_ADDR)
    }
}

impl std::error::Error for MissingClientAddr {}

impl IntoResponse for MissingClientAddr {
    fn into_response(self) -> Response {
        tracing::error!(target: "sessionward", "{MISSING_CLIENT_ADDR}");
        (self.status(), MISSING_CLIENT_ADDR).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = MissingClientAddr;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .ok_or(MissingClientAddr)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ClientAddr>().copied())
    }
}

/// An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`): a trusted proxy.
///
/// ```
/// use sessionward::IpRange;
/// let r: IpRange = "10.0.0.0/8".parse().expect("a range");
/// assert!(r.contains("10.1.2.3".parse().expect("an address")));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

/// Why a string is not an [`IpRange`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR range (write 10.0.0.0/8, fd00::/8 or 192.0.2.7)")]
pub struct InvalidIpRange(String);

impl FromStr for IpRange {
    type Err = InvalidIpRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidIpRange(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Self { net, prefix })
    }
}

impl IpRange {
    /// The range holding exactly `ip`.
    #[must_use]
    pub fn single(ip: IpAddr) -> Self {
        let net = ip.to_canonical();
        let prefix = if net.is_ipv4() { 32 } else { 128 };
        Self { net, prefix }
    }

    /// Whether `ip` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            let host_bits = u32::from(width - prefix);
            if host_bits >= 128 {
                0
            } else {
                bits >> host_bits
            }
        }
        match (self.net, ip.to_canonical()) {
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

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The header a trusted proxy writes the client address in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx `$proxy_add_x_forwarded_for`, most load
    /// balancers). The default.
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for=proxy1` (RFC 7239).
    Forwarded,
}

/// How the layer finds a request's client address (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientAddrSource {
    trusted: Vec<IpRange>,
    hops: usize,
    header: Option<ForwardedHeader>,
}

impl ClientAddrSource {
    pub(crate) fn new(trusted: Vec<IpRange>, hops: usize, header: ForwardedHeader) -> Self {
        Self {
            trusted,
            hops,
            header: Some(header),
        }
    }

    /// The client address of a request, or `None` if the peer address is unknown.
    pub(crate) fn resolve(
        &self,
        extensions: &Extensions,
        headers: &HeaderMap,
    ) -> Option<ClientAddr> {
        let peer = peer(extensions)?.to_canonical();
        if self.trusted.is_empty() || !self.trusted.iter().any(|r| r.contains(peer)) {
            return Some(ClientAddr(peer));
        }
        let forwarded = match self.header {
            Some(ForwardedHeader::Forwarded) => {
                nth_from_right(headers, "forwarded", self.hops, forwarded_for)
            }
            Some(ForwardedHeader::XForwardedFor) => {
                nth_from_right(headers, "x-forwarded-for", self.hops, xff_entry)
            }
            None => None,
        };
        Some(ClientAddr(forwarded.unwrap_or(peer).to_canonical()))
    }
}

/// The connection's peer address from the request extensions.
fn peer(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// The `n`-th entry from the right of the comma-separated list that the fields of `name` form,
/// parsed by `parse`; `None` when there are fewer than `n` entries or one of the last `n` does
/// not parse. Examines at most `n` entries.
fn nth_from_right(
    headers: &HeaderMap,
    name: &str,
    n: usize,
    parse: fn(&[u8]) -> Option<IpAddr>,
) -> Option<IpAddr> {
    if n == 0 {
        return None;
    }
    let mut seen = 0;
    for field in headers.get_all(name).iter().rev() {
        for entry in field.as_bytes().rsplit(|&b| b == b',') {
            let ip = parse(trim(entry))?;
            seen += 1;
            if seen == n {
                return Some(ip);
            }
        }
    }
    None
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn node(b: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

fn xff_entry(b: &[u8]) -> Option<IpAddr> {
    if b.is_empty() || b.len() > MAX_XFF_ENTRY {
        return None;
    }
    node(b)
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=https;by=...`); exactly
/// one `for` pair, a token or a quoted string without escapes.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    if element.is_empty() || element.len() > MAX_FORWARDED_ELEMENT {
        return None;
    }
    let mut found = None;
    for (i, pair) in element.split(|&b| b == b';').enumerate() {
        if i >= MAX_FORWARDED_PAIRS {
            return None;
        }
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        if !trim(&pair[..eq]).eq_ignore_ascii_case(b"for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        let mut value = trim(&pair[eq + 1..]);
        if let [b'"', inner @ .., b'"'] = value {
            value = inner;
        }
        if value.iter().any(|&b| b == b'"' || b == b'\\') {
            return None;
        }
        found = Some(node(value)?);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn ext(peer: &str) -> Extensions {
        let mut e = Extensions::new();
        e.insert(SocketAddr::new(ip(peer), 4711));
        e
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(name, v);
            }
        }
        h
    }

    fn source(hops: usize, header: ForwardedHeader) -> ClientAddrSource {
        ClientAddrSource::new(vec![IpRange::single(ip("127.0.0.1"))], hops, header)
    }

    fn resolve(src: &ClientAddrSource, peer: &str, h: &HeaderMap) -> Option<IpAddr> {
        src.resolve(&ext(peer), h).map(ClientAddr::ip)
    }

    #[test]
    fn ranges() {
        let r = |s: &str| s.parse::<IpRange>().expect("range");
        assert!(r("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(!r("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(r("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(r("::ffff:127.0.0.1").contains(ip("127.0.0.1")));
        assert!(r("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(r("fd00::/8").contains(ip("fd12::1")));
        assert!(!r("fd00::/8").contains(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "proxy",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "",
            "1.2.3.4/0008",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn no_peer_no_client() {
        let src = ClientAddrSource::default();
        assert_eq!(src.resolve(&Extensions::new(), &HeaderMap::new()), None);
    }

    #[test]
    fn headers_are_ignored_by_default_and_from_untrusted_peers() {
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        let none = ClientAddrSource::default();
        assert_eq!(resolve(&none, "192.0.2.1", &h), Some(ip("192.0.2.1")));
        let src = source(1, ForwardedHeader::XForwardedFor);
        assert_eq!(resolve(&src, "192.0.2.1", &h), Some(ip("192.0.2.1")));
        assert_eq!(resolve(&src, "127.0.0.1", &h), Some(ip("1.2.3.4")));
        assert_eq!(resolve(&src, "::ffff:127.0.0.1", &h), Some(ip("1.2.3.4")));
    }

    #[test]
    fn x_forwarded_for_counts_hops_from_the_right() {
        let one = source(1, ForwardedHeader::XForwardedFor);
        let two = source(2, ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["6.6.6.6, 1.2.3.4"]);
        assert_eq!(resolve(&one, "127.0.0.1", &h), Some(ip("1.2.3.4")));
        assert_eq!(resolve(&two, "127.0.0.1", &h), Some(ip("6.6.6.6")));
        // Split over fields: one list, in order.
        let h = headers("x-forwarded-for", &["6.6.6.6", "1.2.3.4, 10.0.0.2"]);
        assert_eq!(resolve(&two, "127.0.0.1", &h), Some(ip("1.2.3.4")));
        // Ports and brackets, IPv6, mapped addresses.
        for (v, want) in [
            ("192.0.2.9:4711", "192.0.2.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("::ffff:192.0.2.9", "192.0.2.9"),
        ] {
            let h = headers("x-forwarded-for", &[v]);
            assert_eq!(resolve(&one, "127.0.0.1", &h), Some(ip(want)), "{v}");
        }
    }

    #[test]
    fn malformed_or_short_headers_fall_back_to_the_peer() {
        let two = source(2, ForwardedHeader::XForwardedFor);
        let peer = Some(ip("127.0.0.1"));
        for v in [
            "10.0.0.2",
            "junk, x",
            "1.2.3.4, junk",
            "1.2.3.4,,10.0.0.2",
            "1.2.3.4, ",
            "unknown, 10.0.0.2",
            "1.2.3.4 5.6.7.8, 10.0.0.2",
        ] {
            let h = headers("x-forwarded-for", &[v]);
            assert_eq!(resolve(&two, "127.0.0.1", &h), peer, "{v:?}");
        }
        assert_eq!(resolve(&two, "127.0.0.1", &HeaderMap::new()), peer);
        let long = format!("1.2.3.4, {}", "1".repeat(100));
        let h = headers("x-forwarded-for", &[&long]);
        assert_eq!(resolve(&two, "127.0.0.1", &h), peer);
        // Non-UTF-8 bytes.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4, \xff\xfe").expect("obs-text is a valid value"),
        );
        assert_eq!(resolve(&two, "127.0.0.1", &h), peer);
    }

    #[test]
    fn a_huge_header_is_examined_only_as_far_as_the_hops() {
        let one = source(1, ForwardedHeader::XForwardedFor);
        // Junk to the left of the entries read is never looked at.
        let v = format!("{}1.2.3.4", "garbage, ".repeat(5000));
        let h = headers("x-forwarded-for", &[&v]);
        assert_eq!(resolve(&one, "127.0.0.1", &h), Some(ip("1.2.3.4")));
    }

    #[test]
    fn forwarded_header() {
        let one = source(1, ForwardedHeader::Forwarded);
        let two = source(2, ForwardedHeader::Forwarded);
        let peer = Some(ip("127.0.0.1"));
        for (v, want) in [
            (
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                Some(ip("192.0.2.60")),
            ),
            (
                "For=\"[2001:db8:cafe::17]:4711\"",
                Some(ip("2001:db8:cafe::17")),
            ),
            ("proto=https; for=192.0.2.61", Some(ip("192.0.2.61"))),
            ("for=\"192.0.2.62:80\"", Some(ip("192.0.2.62"))),
            ("for=unknown", peer),
            ("for=_hidden", peer),
            ("proto=https", peer),
            ("for=1.2.3.4;for=5.6.7.8", peer),
            ("for=\"1.2.3.4", peer),
            ("for=\"1.2\\.3.4\"", peer),
            ("for", peer),
            ("", peer),
        ] {
            let h = headers("forwarded", &[v]);
            assert_eq!(resolve(&one, "127.0.0.1", &h), want, "{v:?}");
        }
        let h = headers("forwarded", &["for=6.6.6.6, for=1.2.3.4"]);
        assert_eq!(resolve(&one, "127.0.0.1", &h), Some(ip("1.2.3.4")));
        assert_eq!(resolve(&two, "127.0.0.1", &h), Some(ip("6.6.6.6")));
        // X-Forwarded-For is not read when Forwarded is configured.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(resolve(&one, "127.0.0.1", &h), peer);
        // Too many pairs in one element.
        let v = format!("{}for=1.2.3.4", "a=b;".repeat(10));
        let h = headers("forwarded", &[&v]);
        assert_eq!(resolve(&one, "127.0.0.1", &h), peer);
    }
}
