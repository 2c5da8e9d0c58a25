//! [`CrossOriginGuard`]: the layer.

use http::{HeaderMap, Method, Uri};
use tower_layer::Layer;

use super::rules::Rules;
use super::service::CrossOriginGuardService;

/// Refuses, with 403, requests with an unsafe method (anything but GET, HEAD, OPTIONS and
/// TRACE) that a browser marks as cross-site: `Sec-Fetch-Site: cross-site`, or an `Origin`
/// whose host is neither the request's host nor a trusted origin. Requests that carry neither
/// header (curl, mobile apps, server-to-server) pass: they are not a browser acting for a
/// signed-in user.
///
/// [`SessionLayer`](crate::SessionLayer) already applies the same check to every request that
/// carries the session cookie (on by default, see
/// [`SessionConfigBuilder::cross_origin_check`](crate::SessionConfigBuilder::cross_origin_check));
/// add this layer to guard routes whatever the cookies, e.g. sign-in forms.
///
/// It complements `SameSite` (which older browsers and same-site subdomains do not cover) as
/// the CSRF defence the OWASP CSRF cheat sheet describes under "Fetch Metadata" and "Verifying
/// Origin with standard headers".
///
/// ```no_run
/// use axum::{Router, routing::post};
/// use sessionward::{CrossOriginGuard, MemoryStore, SessionLayer};
///
/// let app: Router = Router::new()
///     .route("/api/transfer", post(|| async { "done" }))
///     .layer(CrossOriginGuard::new().trust_origin("https://app.example.com"))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
#[derive(Clone, Debug, Default)]
pub struct CrossOriginGuard {
    trusted: Rules,
}

impl CrossOriginGuard {
    /// A guard that trusts only same-origin requests.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts requests from `origin` (e.g. `https://app.example.com`; scheme, host and
    /// port, compared case-insensitively).
    #[must_use]
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted.trust(&origin.into());
        self
    }

    /// Whether a request with these parts must be refused.
    pub(crate) fn blocks(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.trusted.blocks(method, uri, headers)
    }
}

impl<S> Layer<S> for CrossOriginGuard {
    type Service = CrossOriginGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginGuardService::new(inner, self.trusted.clone())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::HOST;

    use super::*;

    fn check(
        guard: &CrossOriginGuard,
        method: &Method,
        headers: &[(&'static str, &'static str)],
    ) -> bool {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("app.example.com"));
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        guard.blocks(method, &Uri::from_static("/x"), &h)
    }

    #[test]
    fn rules() {
        let g = CrossOriginGuard::new().trust_origin("https://partner.example.net/");
        assert!(!check(&g, &Method::POST, &[]));
        assert!(!check(
            &g,
            &Method::GET,
            &[("sec-fetch-site", "cross-site")]
        ));
        assert!(check(
            &g,
            &Method::POST,
            &[("sec-fetch-site", "cross-site")]
        ));
        assert!(check(
            &g,
            &Method::DELETE,
            &[("origin", "https://evil.example")]
        ));
        assert!(check(&g, &Method::PUT, &[("origin", "null")]));
        assert!(check(
            &g,
            &Method::PUT,
            &[("origin", "null"), ("sec-fetch-site", "same-site")]
        ));
        // A same-origin form post from a page with `Referrer-Policy: no-referrer`.
        assert!(!check(
            &g,
            &Method::POST,
            &[("origin", "null"), ("sec-fetch-site", "same-origin")]
        ));
        // The browser says same-origin but the Origin names another host: refused.
        assert!(check(
            &g,
            &Method::POST,
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin")
            ]
        ));
        assert!(!check(
            &g,
            &Method::POST,
            &[("origin", "https://app.example.com")]
        ));
        assert!(!check(
            &g,
            &Method::POST,
            &[
                ("origin", "https://APP.example.com"),
                ("sec-fetch-site", "same-origin")
            ]
        ));
        // Same site but another origin (a sibling subdomain): refused.
        assert!(check(
            &g,
            &Method::POST,
            &[
                ("origin", "https://evil.example.com"),
                ("sec-fetch-site", "same-site")
            ]
        ));
        assert!(!check(
            &g,
            &Method::POST,
            &[
                ("origin", "https://partner.example.net"),
                ("sec-fetch-site", "cross-site")
            ]
        ));
    }
}
