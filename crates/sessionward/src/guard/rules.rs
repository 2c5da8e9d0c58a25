//! The rules of the cross-origin check (SEC-36), shared by the layer and the session layer's
//! own check.

use std::fmt;
use std::sync::Arc;

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method, Uri};

/// The body of the 403 answer.
pub(crate) const BLOCKED: &str = r#"{"error":"cross_origin_request_blocked"}"#;

/// The trusted origins, and the check.
#[derive(Clone, Default)]
pub(crate) struct Rules {
    trusted: Arc<Vec<String>>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.trusted, f)
    }
}

impl Rules {
    /// Also accepts requests from `origin`.
    pub(crate) fn trust(&mut self, origin: &str) {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        Arc::make_mut(&mut self.trusted).push(origin);
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
