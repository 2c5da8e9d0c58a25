//! [`CrossOriginGuard`]: refuses unsafe methods that a browser sends cross-site (SEC-36).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::json_response;

pub(crate) const BLOCKED: &str = r#"{"error":"cross_origin_request_blocked"}"#;

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
    trusted: Arc<Vec<String>>,
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
        let origin = origin.into().trim_end_matches('/').to_ascii_lowercase();
        Arc::make_mut(&mut self.trusted).push(origin);
        self
    }

    /// Whether a request with these parts must be refused.
    pub(crate) fn blocks(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return false;
        }
        let origin = headers.get(ORIGIN).map(|o| o.to_str().unwrap_or("invalid"));
        let trusted = origin.is_some_and(|o| {
            let o = o.trim_end_matches('/').to_ascii_lowercase();
            self.trusted.contains(&o)
        });
        if trusted {
            return false;
        }
        let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
        if fetch_site.is_some_and(|v| v.eq_ignore_ascii_case(b"cross-site")) {
            return true;
        }
        let Some(origin) = origin else {
            return false;
        };
        let Some((_, authority)) = origin.split_once("://") else {
            // `Origin: null` (sandboxed frames, privacy redirects, or a page with
            // `Referrer-Policy: no-referrer`) names no host. Only the browser's own
            // `Sec-Fetch-Site: same-origin` vouches for such a request.
            return !fetch_site.is_some_and(|v| v.eq_ignore_ascii_case(b"same-origin"));
        };
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str));
        !host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
    }
}

impl<S> Layer<S> for CrossOriginGuard {
    type Service = CrossOriginGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOriginGuardService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service of [`CrossOriginGuard`].
#[derive(Clone, Debug)]
pub struct CrossOriginGuardService<S> {
    inner: S,
    guard: CrossOriginGuard,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CrossOriginGuardService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.guard.blocks(req.method(), req.uri(), req.headers()) {
            tracing::warn!(target: "sessionward", event = "request.cross_origin_blocked", method = %req.method(), "cross-site request with an unsafe method refused");
            return GuardFuture::blocked(json_response(StatusCode::FORBIDDEN, BLOCKED));
        }
        GuardFuture::inner(self.inner.call(req))
    }
}

pin_project! {
    /// The response future of [`CrossOriginGuardService`].
    pub struct GuardFuture<F, B> {
        #[pin]
        state: GuardState<F, B>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F, B> {
        Inner { #[pin] future: F },
        Blocked { response: Option<Response<B>> },
    }
}

impl<F, B> GuardFuture<F, B> {
    fn inner(future: F) -> Self {
        Self {
            state: GuardState::Inner { future },
        }
    }

    fn blocked(response: Response<B>) -> Self {
        Self {
            state: GuardState::Blocked {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for GuardFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GuardFuture")
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Inner { future } => Poll::Ready(ready!(future.poll(cx))),
            GuardProj::Blocked { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
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
