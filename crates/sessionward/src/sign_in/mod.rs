//! The sign-in requirement's answer to each kind of client (SEC-42): a browser navigation is
//! sent to the sign-in page with a `next` parameter, an htmx request gets `HX-Redirect`, and an
//! API client gets the 401 with a `WWW-Authenticate` challenge. [`safe_next`] decides which
//! `next` values may be redirected to.
//!
//! The extractors and route layers answer a 401 as they always did, and mark the response;
//! the session layer, which saw the request, turns a marked 401 into the answer for that kind
//! of client. A 403 (signed in, without the role) is never rewritten, so it never redirects.

mod next;

use std::sync::Arc;

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};

pub use self::next::safe_next;
use crate::config::{ConfigError, SessionConfig};
use crate::rejection::AuthRejection;

const HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
const HX_REDIRECT: HeaderName = HeaderName::from_static("hx-redirect");
const HX_CURRENT_URL: HeaderName = HeaderName::from_static("hx-current-url");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// The configured sign-in page: where browsers that need a session are sent.
#[derive(Clone, Debug)]
pub(crate) struct SignInPage {
    path: Arc<str>,
    param: Arc<str>,
}

impl SignInPage {
    /// Validates the page's path (a [`safe_next`] path with no query or fragment) and the
    /// name of its `next` parameter (letters, digits, `-`, `_`).
    pub(crate) fn new(path: String, param: String) -> Result<Self, ConfigError> {
        if safe_next(&path).is_none() || path.contains(['?', '#', '%']) {
            return Err(ConfigError::InvalidSignInPath(path));
        }
        let param_ok = !param.is_empty()
            && param.len() <= 64
            && param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !param_ok {
            return Err(ConfigError::InvalidNextParameter(param));
        }
        Ok(Self {
            path: Arc::from(path),
            param: Arc::from(param),
        })
    }

    /// The sign-in page's URL, with `next` if there is one (percent-encoded).
    fn location(&self, next: Option<&str>) -> String {
        let Some(next) = next.filter(|n| *n != &*self.path) else {
            return self.path.to_string();
        };
        let mut url = String::with_capacity(self.path.len() + self.param.len() + next.len() * 3);
        url.push_str(&self.path);
        url.push('?');
        url.push_str(&self.param);
        url.push('=');
        for b in next.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
                url.push(char::from(b));
            } else {
                url.push('%');
                url.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                url.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
            }
        }
        url
    }
}

/// The kind of client a request comes from, as far as answering "sign in first" goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Anything else: answered with the 401 and a `WWW-Authenticate` challenge.
    Api,
    /// A browser navigation (`Sec-Fetch-Mode: navigate`, or `Accept` naming `text/html`).
    Browser,
    /// An htmx request (`HX-Request: true`).
    Htmx,
}

/// What the layer keeps of a request to answer it if it needs a session: its kind, and where
/// the user was going (only when a sign-in page is configured; a cheap reference-counted copy).
#[derive(Clone, Debug)]
pub(crate) struct Client {
    kind: Kind,
    /// The request's own URI (a browser navigation with a safe method).
    uri: Option<Uri>,
    /// `HX-Current-URL`: the page an htmx request was made from.
    current_url: Option<HeaderValue>,
    /// The request is for the sign-in page itself: never redirect it to itself.
    is_sign_in_page: bool,
}

impl Client {
    /// Classifies a request. No allocation.
    pub(crate) fn of(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        config: &SessionConfig,
    ) -> Self {
        // Without a sign-in page every kind of client gets the same answer (the 401 and its
        // challenge, see `answer`): no header to look at.
        let Some(page) = config.sign_in.as_ref() else {
            return Self {
                kind: Kind::Api,
                uri: None,
                current_url: None,
                is_sign_in_page: false,
            };
        };
        let kind = if headers
            .get(HX_REQUEST)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
        {
            Kind::Htmx
        } else if headers
            .get(SEC_FETCH_MODE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate"))
            || headers
                .get_all(ACCEPT)
                .iter()
                .any(|v| accepts_html(v.as_bytes()))
        {
            Kind::Browser
        } else {
            Kind::Api
        };
        let safe_method = *method == Method::GET || *method == Method::HEAD;
        Self {
            kind,
            uri: (kind == Kind::Browser && safe_method).then(|| uri.clone()),
            current_url: (kind == Kind::Htmx)
                .then(|| headers.get(HX_CURRENT_URL).cloned())
                .flatten(),
            is_sign_in_page: uri.path() == &*page.path,
        }
    }

    /// Where the user was going: a [`safe_next`] path, or none.
    fn next(&self) -> Option<&str> {
        if let Some(uri) = &self.uri {
            return uri.path_and_query().and_then(|pq| safe_next(pq.as_str()));
        }
        let url = self.current_url.as_ref()?.to_str().ok()?;
        // `scheme://authority/path?query`: keep the path and query.
        let after_scheme = &url[url.find("://")? + 3..];
        let path = &after_scheme[after_scheme.find('/')?..];
        let path = path.split('#').next().unwrap_or(path);
        safe_next(path)
    }
}

/// Whether an `Accept` value names `text/html` (with any parameters, any case).
fn accepts_html(accept: &[u8]) -> bool {
    accept.split(|&b| b == b',').any(|item| {
        let media = item.split(|&b| b == b';').next().unwrap_or(item);
        media.trim_ascii().eq_ignore_ascii_case(b"text/html")
    })
}

/// The mark an [`AuthRejection`] 401 carries in its response's extensions, so that the session
/// layer answers it for the kind of client.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NeedsSignIn(pub(crate) AuthRejection);

/// Turns a marked 401 into the answer for `client`: 303 to the sign-in page for a browser
/// navigation, `HX-Redirect` for htmx (when a sign-in page is configured), and a
/// `WWW-Authenticate` challenge on every 401. Any other response passes unchanged.
pub(crate) fn answer<B: Default>(
    mut res: Response<B>,
    client: &Client,
    config: &SessionConfig,
) -> Response<B> {
    let Some(NeedsSignIn(reason)) = res.extensions_mut().remove::<NeedsSignIn>() else {
        return res;
    };
    if res.status() != StatusCode::UNAUTHORIZED {
        return res;
    }
    let page = config.sign_in.as_ref().filter(|_| !client.is_sign_in_page);
    let location = page.and_then(|p| HeaderValue::from_str(&p.location(client.next())).ok());
    if client.kind == Kind::Browser
        && let Some(location) = location.clone()
    {
        let mut redirect = Response::new(B::default());
        *redirect.status_mut() = StatusCode::SEE_OTHER;
        let h = redirect.headers_mut();
        h.insert(LOCATION, location);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return redirect;
    }
    let h = res.headers_mut();
    if client.kind == Kind::Htmx
        && let Some(location) = location
    {
        h.insert(HX_REDIRECT, location);
    }
    challenge(h, reason, config);
    if !h.contains_key(CONTENT_TYPE) {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    res
}

/// The `WWW-Authenticate` challenges of a 401: `Bearer` when the bearer transport is on, and
/// `Cookie` (with `form-action`, the sign-in page, when there is one) when the cookie is.
fn challenge(h: &mut HeaderMap, reason: AuthRejection, config: &SessionConfig) {
    let fresh = matches!(reason, AuthRejection::ReauthenticationRequired);
    if config.transport.bearer() {
        // RFC 9470: the token is valid, but its authentication is too old.
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(if fresh {
                "Bearer error=\"insufficient_user_authentication\""
            } else {
                "Bearer"
            }),
        );
    }
    if config.transport.cookie() {
        let value = match &config.sign_in {
            Some(p) => HeaderValue::from_str(&format!("Cookie form-action=\"{}\"", p.path)).ok(),
            None => Some(HeaderValue::from_static("Cookie")),
        };
        if let Some(v) = value {
            h.append(WWW_AUTHENTICATE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> SignInPage {
        SignInPage::new("/login".into(), "next".into()).expect("valid")
    }

    #[test]
    fn next_is_percent_encoded_and_never_the_sign_in_page() {
        let p = page();
        assert_eq!(p.location(None), "/login");
        assert_eq!(p.location(Some("/login")), "/login");
        assert_eq!(p.location(Some("/account")), "/login?next=/account");
        assert_eq!(
            p.location(Some("/a?x=1&y=%20#f")),
            "/login?next=/a%3Fx%3D1%26y%3D%2520%23f"
        );
    }

    #[test]
    fn sign_in_page_and_parameter_are_validated() {
        for bad in [
            "",
            "login",
            "//evil",
            "/a?b",
            "/a#b",
            "/a%2Fb",
            "/\\x",
            "https://x/",
        ] {
            assert!(
                matches!(
                    SignInPage::new(bad.into(), "next".into()),
                    Err(ConfigError::InvalidSignInPath(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["", "a b", "n=x", "n&x", "ü"] {
            assert!(matches!(
                SignInPage::new("/login".into(), bad.into()),
                Err(ConfigError::InvalidNextParameter(_))
            ));
        }
        assert!(SignInPage::new("/auth/sign-in".into(), "return_to".into()).is_ok());
    }

    #[test]
    fn accept_names_html() {
        assert!(accepts_html(b"text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(accepts_html(b"application/json, TEXT/HTML;q=0.1"));
        assert!(!accepts_html(b"application/json"));
        assert!(!accepts_html(b"*/*"));
        assert!(!accepts_html(b"text/htmlx"));
    }
}
