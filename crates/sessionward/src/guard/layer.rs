//! [`CrossOriginGuard`]: the layer.

use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use tower_layer::Layer;

use super::rules::{Origin, Rules};
use super::service::CrossOriginGuardService;
use crate::config::ConfigError;
use crate::event_limit::EventLimiter;

/// Refuses, with 403, requests with an unsafe method (anything but GET, HEAD, OPTIONS and
/// TRACE) that a browser sends from another origin. It decides in this order, as current
/// browsers and Go 1.25's `CrossOriginProtection` do:
///
/// | request | answer |
/// | --- | --- |
/// | a safe method | passes |
/// | `Sec-Fetch-Site: same-origin` or `none` | passes, whatever `Origin` and `Host` say |
/// | `Sec-Fetch-Site: same-site`, `cross-site` (or another value) | 403 unless trusted |
/// | no `Sec-Fetch-Site`, no `Origin` (curl, mobile apps, server-to-server) | passes |
/// | no `Sec-Fetch-Site`, `Origin` trusted or the request's own origin | passes |
/// | no `Sec-Fetch-Site`, any other `Origin` (`null` and malformed ones included) | 403 |
///
/// Origins compare in full: scheme, host (case-insensitively) and port, with the scheme's
/// default port filled in. The request's own origin is one of the
/// [public origins](Self::public_origin) when any is declared, else the `Host` header (or the
/// URI's authority) with the URI's scheme; an HTTP/1.1 request carries no scheme, so without
/// public origins only host and port are compared. Behind a reverse proxy, declare the public
/// origin so the check does not depend on the `Host` the proxy forwards (see
/// `docs/deployment.md`, "Behind a reverse proxy").
///
/// [`SessionLayer`](crate::SessionLayer) already applies the same check to every request that
/// carries the session cookie (on by default, see
/// [`SessionConfigBuilder::cross_origin_check`](crate::SessionConfigBuilder::cross_origin_check)
/// and [`SessionConfigBuilder::public_origin`](crate::SessionConfigBuilder::public_origin));
/// add this layer to guard routes whatever the cookies, e.g. sign-in forms.
///
/// It complements `SameSite` (which older browsers and same-site subdomains do not cover) as
/// the CSRF defence the OWASP CSRF cheat sheet describes under "Fetch Metadata" and "Verifying
/// Origin with standard headers".
///
/// ```no_run
/// use axum::{Router, routing::post};
/// use sessionward::{ConfigError, CrossOriginGuard, MemoryStore, SessionLayer};
///
/// # fn main() -> Result<(), ConfigError> {
/// let guard = CrossOriginGuard::new()
///     .public_origin("https://app.example.com")?
///     .trust_origin("https://partner.example.net")?;
/// let app: Router = Router::new()
///     .route("/api/transfer", post(|| async { "done" }))
///     .layer(guard)
///     .layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct CrossOriginGuard {
    rules: Rules,
    /// The budget of `request.cross_origin_blocked` lines, shared by every service of this
    /// guard: 60 a minute (system clock), the rest counted.
    events: Arc<EventLimiter>,
}

impl CrossOriginGuard {
    /// A guard that trusts only same-origin requests, with no public origin declared.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts requests from `origin`, another site's origin (`scheme://host[:port]`,
    /// e.g. `https://partner.example.net`; compared case-insensitively, default ports
    /// normalised), even when the browser marks them `same-site` or `cross-site`. Default:
    /// none.
    ///
    /// ```
    /// use sessionward::CrossOriginGuard;
    /// assert!(CrossOriginGuard::new().trust_origin("https://partner.example.net").is_ok());
    /// // Not an origin: a path, no scheme.
    /// assert!(CrossOriginGuard::new().trust_origin("https://partner.example.net/x").is_err());
    /// assert!(CrossOriginGuard::new().trust_origin("partner.example.net").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidOrigin`] if `origin` is not `scheme://host[:port]` (one trailing
    /// `/` allowed; no user, path, query or fragment).
    pub fn trust_origin(mut self, origin: impl AsRef<str>) -> Result<Self, ConfigError> {
        self.rules.trust(Origin::configured(origin.as_ref())?);
        Ok(self)
    }

    /// Declares `origin` as one of the app's own public origins, the URL people type
    /// (`https://app.example.com`). Call it once per origin the app answers on. Once one is
    /// declared, a request without `Sec-Fetch-Site` is same-origin only if its `Origin` is
    /// one of them (or trusted): the `Host` header no longer counts, so a reverse proxy that
    /// rewrites it changes nothing, and the scheme is compared. Default: none (the `Host`).
    ///
    /// ```
    /// use sessionward::CrossOriginGuard;
    /// let guard = CrossOriginGuard::new()
    ///     .public_origin("https://app.example.com")
    ///     .and_then(|g| g.public_origin("https://www.example.com"));
    /// assert!(guard.is_ok());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidOrigin`], as for [`trust_origin`](Self::trust_origin).
    pub fn public_origin(mut self, origin: impl AsRef<str>) -> Result<Self, ConfigError> {
        self.rules.public(Origin::configured(origin.as_ref())?);
        Ok(self)
    }

    /// Adds an origin already validated by the configuration builder.
    pub(crate) fn add_public(&mut self, origin: Origin) {
        self.rules.public(origin);
    }

    /// Whether a request with these parts must be refused.
    pub(crate) fn blocks(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.rules.blocks(method, uri, headers)
    }
}

impl<S> Layer<S> for CrossOriginGuard {
    type Service = CrossOriginGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginGuardService::new(inner, self.rules.clone(), self.events.clone())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::HOST;

    use super::*;

    const PASS: bool = false;
    const REFUSED: bool = true;

    /// A request to `uri` with `Host: host` (none if empty) and `headers`.
    fn decide(
        guard: &CrossOriginGuard,
        method: &Method,
        uri: &'static str,
        host: &'static str,
        headers: &[(&'static str, &'static str)],
    ) -> bool {
        let mut h = HeaderMap::new();
        if !host.is_empty() {
            h.insert(HOST, HeaderValue::from_static(host));
        }
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        guard.blocks(method, &Uri::from_static(uri), &h)
    }

    /// A request to `/x` with `Host: app.example.com`.
    fn check(
        guard: &CrossOriginGuard,
        method: &Method,
        headers: &[(&'static str, &'static str)],
    ) -> bool {
        decide(guard, method, "/x", "app.example.com", headers)
    }

    fn partner() -> CrossOriginGuard {
        CrossOriginGuard::new()
            .trust_origin("https://partner.example.net/")
            .expect("a valid origin")
    }

    const EVIL: (&str, &str) = ("origin", "https://evil.example");
    const CROSS_SITE: (&str, &str) = ("sec-fetch-site", "cross-site");
    const SAME_SITE: (&str, &str) = ("sec-fetch-site", "same-site");
    const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

    #[test]
    fn rules() {
        let g = partner();
        // Safe methods always pass, whatever the headers say.
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert_eq!(check(&g, &m, &[EVIL, CROSS_SITE]), PASS, "{m}");
        }
        // No Sec-Fetch-Site, no Origin: not a browser acting for a user.
        assert_eq!(check(&g, &Method::POST, &[]), PASS);
        assert_eq!(check(&g, &Method::POST, &[CROSS_SITE]), REFUSED);
        assert_eq!(check(&g, &Method::DELETE, &[EVIL]), REFUSED);
        assert_eq!(check(&g, &Method::PUT, &[("origin", "null")]), REFUSED);
        assert_eq!(
            check(&g, &Method::PUT, &[("origin", "null"), SAME_SITE]),
            REFUSED
        );
        // A same-origin form post from a page with `Referrer-Policy: no-referrer`.
        assert_eq!(
            check(&g, &Method::POST, &[("origin", "null"), SAME_ORIGIN]),
            PASS
        );
        // The browser says same-origin but the Origin names another host: Sec-Fetch-Site is
        // believed first (as Go 1.25's CrossOriginProtection does). A browser never sends
        // this pair; a client that forges it can forge any header, cookies included.
        assert_eq!(check(&g, &Method::POST, &[EVIL, SAME_ORIGIN]), PASS);
        assert_eq!(
            check(&g, &Method::POST, &[("origin", "https://app.example.com")]),
            PASS
        );
        assert_eq!(
            check(
                &g,
                &Method::POST,
                &[("origin", "https://APP.example.com"), SAME_ORIGIN]
            ),
            PASS
        );
        // Same site but another origin (a sibling subdomain): refused.
        assert_eq!(
            check(
                &g,
                &Method::POST,
                &[("origin", "https://evil.example.com"), SAME_SITE]
            ),
            REFUSED
        );
        assert_eq!(
            check(
                &g,
                &Method::POST,
                &[("origin", "https://partner.example.net"), CROSS_SITE]
            ),
            PASS
        );
    }

    #[test]
    fn sec_fetch_site_is_believed_first() {
        let g = CrossOriginGuard::new();
        let own = ("origin", "https://app.example.com");
        // `none`: the person typed the URL or used a bookmark.
        assert_eq!(
            check(&g, &Method::POST, &[("sec-fetch-site", "none")]),
            PASS
        );
        // same-origin passes though the proxy forwarded another Host.
        assert_eq!(
            decide(
                &g,
                &Method::POST,
                "/x",
                "127.0.0.1:3000",
                &[own, SAME_ORIGIN]
            ),
            PASS
        );
        // same-site is refused even when the hosts match.
        assert_eq!(check(&g, &Method::POST, &[own, SAME_SITE]), REFUSED);
        assert_eq!(check(&g, &Method::POST, &[SAME_SITE]), REFUSED);
        assert_eq!(check(&g, &Method::PATCH, &[own, CROSS_SITE]), REFUSED);
        // A value this check does not know is not a browser's word for same-origin.
        assert_eq!(
            check(&g, &Method::POST, &[own, ("sec-fetch-site", "same-ish")]),
            REFUSED
        );
        // Values compare case-insensitively.
        assert_eq!(
            check(&g, &Method::POST, &[("sec-fetch-site", "Same-Origin")]),
            PASS
        );
        // A trusted origin passes same-site as cross-site.
        let g = partner();
        assert_eq!(
            check(
                &g,
                &Method::POST,
                &[("origin", "https://partner.example.net"), SAME_SITE]
            ),
            PASS
        );
    }

    #[test]
    fn without_sec_fetch_site_the_full_origin_counts() {
        let g = CrossOriginGuard::new();
        let post = |uri, host, origin| decide(&g, &Method::POST, uri, host, &[("origin", origin)]);
        // The port counts; default ports are filled in on both sides.
        assert_eq!(
            post("/x", "app.example.com:8080", "https://app.example.com"),
            REFUSED
        );
        assert_eq!(
            post("/x", "app.example.com:8080", "http://app.example.com:8080"),
            PASS
        );
        assert_eq!(
            post("/x", "app.example.com:443", "https://app.example.com"),
            PASS
        );
        assert_eq!(
            post("/x", "app.example.com", "https://app.example.com:443"),
            PASS
        );
        assert_eq!(
            post("/x", "app.example.com", "https://app.example.com:8443"),
            REFUSED
        );
        // The scheme counts when the request carries one (HTTP/2, absolute-form).
        let http_app = "http://app.example.com/x";
        assert_eq!(
            post(http_app, "app.example.com", "https://app.example.com"),
            REFUSED
        );
        assert_eq!(
            post(http_app, "app.example.com", "http://app.example.com"),
            PASS
        );
        assert_eq!(
            post("https://app.example.com/x", "", "https://app.example.com"),
            PASS
        );
        assert_eq!(
            post("https://app.example.com/x", "", "http://app.example.com"),
            REFUSED
        );
        // Another host, a malformed Origin, no Host at all.
        assert_eq!(
            post("/x", "app.example.com", "https://app.example.com.evil"),
            REFUSED
        );
        assert_eq!(post("/x", "app.example.com", "app.example.com"), REFUSED);
        assert_eq!(
            post("/x", "app.example.com", "https://app.example.com/x"),
            REFUSED
        );
        assert_eq!(post("/x", "", "https://app.example.com"), REFUSED);
        // IPv6 literals.
        assert_eq!(post("/x", "[::1]:3000", "http://[::1]:3000"), PASS);
        assert_eq!(post("/x", "[::1]:3000", "http://[::2]:3000"), REFUSED);
    }

    #[test]
    fn public_origins_replace_the_host() {
        let g = CrossOriginGuard::new()
            .public_origin("https://app.example.com")
            .and_then(|g| g.public_origin("https://www.example.com:8443"))
            .expect("valid origins");
        let post = |host, origin| decide(&g, &Method::POST, "/x", host, &[("origin", origin)]);
        // Behind a proxy that forwards its upstream's name as Host.
        assert_eq!(post("127.0.0.1:3000", "https://app.example.com"), PASS);
        assert_eq!(post("backend", "https://www.example.com:8443"), PASS);
        // The Host no longer makes an origin the app's own.
        assert_eq!(post("127.0.0.1:3000", "http://127.0.0.1:3000"), REFUSED);
        // The scheme counts: the public origin is https.
        assert_eq!(post("app.example.com", "http://app.example.com"), REFUSED);
        assert_eq!(post("app.example.com", "https://www.example.com"), REFUSED);
        // An http app declared as such refuses an https Origin.
        let g = CrossOriginGuard::new()
            .public_origin("http://app.example.com")
            .expect("a valid origin");
        assert_eq!(
            check(&g, &Method::POST, &[("origin", "https://app.example.com")]),
            REFUSED
        );
        assert_eq!(
            check(&g, &Method::POST, &[("origin", "http://app.example.com")]),
            PASS
        );
    }

    #[test]
    fn configured_origins_are_validated() {
        for bad in [
            "",
            "null",
            "app.example.com",
            "https://",
            "https://app.example.com/path",
            "https://app.example.com?q=1",
            "https://app.example.com#f",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://app example.com",
            "1https://app.example.com",
            "http://[::1",
        ] {
            let err = CrossOriginGuard::new().trust_origin(bad).err();
            assert_eq!(
                err,
                Some(ConfigError::InvalidOrigin(bad.to_owned())),
                "{bad:?}"
            );
            let err = CrossOriginGuard::new().public_origin(bad).err();
            assert_eq!(
                err,
                Some(ConfigError::InvalidOrigin(bad.to_owned())),
                "{bad:?}"
            );
        }
        for good in [
            "https://app.example.com",
            "https://app.example.com/",
            "HTTPS://App.Example.com:8443",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
        ] {
            assert!(
                CrossOriginGuard::new().trust_origin(good).is_ok(),
                "{good:?}"
            );
        }
    }
}
