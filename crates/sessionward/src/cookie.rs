//! The `Set-Cookie` strings that do not depend on the token, computed once when the
//! configuration is built.

use std::sync::Arc;

use http::HeaderValue;

/// The parts of the session cookie's `Set-Cookie` header that every response shares.
#[derive(Clone, Debug)]
pub(crate) struct CookieStrings {
    /// `name=`.
    pub(crate) prefix: Arc<str>,
    /// What follows the value, identical whenever the cookie is set or cleared (SEC-03):
    /// `; Path=/; Secure; HttpOnly; SameSite=Strict` and the like (`; Partitioned` last when
    /// configured).
    pub(crate) attributes: Arc<str>,
    /// The whole value that clears the cookie.
    pub(crate) clear: Option<HeaderValue>,
}

impl CookieStrings {
    pub(crate) fn new(
        name: &str,
        path: &str,
        domain: Option<&str>,
        secure: bool,
        same_site: &str,
        partitioned: bool,
    ) -> Self {
        let mut attributes = format!("; Path={path}");
        if let Some(domain) = domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        if secure {
            attributes.push_str("; Secure");
        }
        attributes.push_str("; HttpOnly; SameSite=");
        attributes.push_str(same_site);
        // On the clearing cookie too: without it, the clearing `Set-Cookie` would address the
        // unpartitioned cookie of that name, not the partitioned one the browser holds.
        if partitioned {
            attributes.push_str("; Partitioned");
        }
        let clear = format!("{name}=; Max-Age=0{attributes}");
        Self {
            prefix: Arc::from(format!("{name}=")),
            attributes: Arc::from(attributes),
            clear: HeaderValue::from_str(&clear).ok(),
        }
    }
}
