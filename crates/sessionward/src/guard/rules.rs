//! The rules of the cross-origin check (SEC-36), shared by the layer and the session layer's
//! own check.
//!
//! The order, as current browsers and Go 1.25's `CrossOriginProtection` decide:
//!
//! 1. a safe method (GET, HEAD, OPTIONS, TRACE) passes;
//! 2. `Sec-Fetch-Site` present: `same-origin` and `none` (typed in the address bar, a
//!    bookmark) pass; anything else (`same-site`, `cross-site`) is refused unless the `Origin`
//!    is trusted. The browser has compared the full origins itself, so what a proxy forwards as
//!    `Host` does not matter;
//! 3. `Sec-Fetch-Site` absent, no `Origin`: passes (curl, mobile apps, server-to-server);
//! 4. `Sec-Fetch-Site` absent, an `Origin`: it passes if it is trusted or equals the request's
//!    own origin (scheme, host and port, default ports made explicit): one of the declared
//!    public origins, or else the `Host` (or the URI's authority) with the URI's scheme when
//!    the request carries one. `Origin: null` and a malformed `Origin` are refused.

use std::fmt;
use std::sync::Arc;

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::config::ConfigError;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The body of the 403 answer.
pub(crate) const BLOCKED: &str = r#"{"error":"cross_origin_request_blocked"}"#;

/// A web origin: scheme, host and port, lower-cased, with the scheme's default port filled in.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}://{}:{port}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]`, lower-cased; `None` if it is not a plain host (a registered name, an IPv4
/// address or a bracketed IPv6 address) with an optional numeric port.
fn parse_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        let inside = &host[1..end];
        let ipv6 = |b: u8| b.is_ascii_hexdigit() || b":.".contains(&b);
        if inside.is_empty() || !inside.bytes().all(ipv6) {
            return None;
        }
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    if host.is_empty() || !(host.starts_with('[') || host.bytes().all(plain)) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// Parses `scheme://host[:port]` (one trailing `/` allowed); `None` for anything else,
    /// `null` included.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        let mut chars = scheme.bytes();
        let scheme_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
            && chars.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = parse_authority(rest.strip_suffix('/').unwrap_or(rest))?;
        let port = port.or_else(|| default_port(&scheme));
        Some(Self { scheme, host, port })
    }

    /// Parses an origin given in configuration.
    pub(crate) fn configured(s: &str) -> Result<Self, ConfigError> {
        Self::parse(s.trim()).ok_or_else(|| ConfigError::InvalidOrigin(s.to_owned()))
    }
}

/// The trusted origins, the app's public origins, and the check.
#[derive(Clone, Default)]
pub(crate) struct Rules {
    trusted: Arc<Vec<Origin>>,
    public: Arc<Vec<Origin>>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("trusted", &self.trusted)
            .field("public", &self.public)
            .finish()
    }
}

fn is(value: Option<&[u8]>, word: &str) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case(word.as_bytes()))
}

impl Rules {
    /// Also accepts requests from `origin`.
    pub(crate) fn trust(&mut self, origin: Origin) {
        Arc::make_mut(&mut self.trusted).push(origin);
    }

    /// Declares `origin` as one of the app's own.
    pub(crate) fn public(&mut self, origin: Origin) {
        Arc::make_mut(&mut self.public).push(origin);
    }

    /// Whether a request with these parts must be refused.
    pub(crate) fn blocks(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return false;
        }
        let raw_origin = headers.get(ORIGIN);
        // Parsed only when a rule needs it (a browser's `same-origin` does not).
        let origin = || {
            raw_origin
                .and_then(|o| o.to_str().ok())
                .and_then(Origin::parse)
        };
        let trusted = |o: &Option<Origin>| o.as_ref().is_some_and(|o| self.trusted.contains(o));
        if let Some(site) = headers.get(SEC_FETCH_SITE).map(HeaderValue::as_bytes) {
            // The browser compared the full origins itself (`Origin: null` from a page with
            // `Referrer-Policy: no-referrer` included): believe it.
            return !(is(Some(site), "same-origin")
                || is(Some(site), "none")
                || trusted(&origin()));
        }
        if raw_origin.is_none() {
            return false;
        }
        let origin = origin();
        if trusted(&origin) {
            return false;
        }
        // `Origin: null` (sandboxed frames, privacy redirects) or a malformed one names no
        // origin; without the browser's word it cannot be shown to be this one.
        origin.is_none_or(|o| !self.is_own(&o, uri, headers))
    }

    /// Whether `origin` is the request's own: a declared public origin, or else the `Host`
    /// with the request's scheme (host and port alone when the request carries no scheme, as
    /// HTTP/1.1 requests do not).
    fn is_own(&self, origin: &Origin, uri: &Uri, headers: &HeaderMap) -> bool {
        if !self.public.is_empty() {
            return self.public.contains(origin);
        }
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str));
        let Some((host, port)) = host.and_then(parse_authority) else {
            return false;
        };
        if host != origin.host {
            return false;
        }
        match uri.scheme_str() {
            Some(scheme) => {
                let scheme = scheme.to_ascii_lowercase();
                origin.scheme == scheme && origin.port == port.or_else(|| default_port(&scheme))
            }
            None => origin.port == port.or_else(|| default_port(&origin.scheme)),
        }
    }
}
