//! Turns an [`Outcome`] into the response's `Set-Cookie`, `Cache-Control` and
//! `Clear-Site-Data` headers.

use std::fmt::Write as _;

use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderName, HeaderValue, Response};
use sessionward_core::{TOKEN_LEN, Timestamp};

use super::commit::Outcome;
use crate::config::SessionConfig;

const MAX_AGE: &str = "; Max-Age=";

/// Writes what `outcome` says into `res`'s headers; `now` (read only for a persistent cookie)
/// counts the cookie's `Max-Age`.
pub(crate) fn apply<B>(
    res: &mut Response<B>,
    outcome: Outcome,
    config: &SessionConfig,
    now: impl FnOnce() -> Timestamp,
) {
    let headers = res.headers_mut();
    // A response that issues a token (in a cookie or in its body) is never cached.
    let mut touched_cookie = outcome.issued.is_some();
    match outcome.issued {
        Some(issued) if issued.cookie => {
            let strings = &config.cookie;
            // Persistent per session ("remember me"), or by the layer's default.
            let max_age = issued
                .persistent
                .then(|| issued.absolute_expires_at.saturating_since(now()).as_secs());
            // One allocation, of the exact length: the token is encoded into the cookie's
            // buffer, which the header value then owns as it is (a buffer with spare capacity
            // would cost the header value a second allocation).
            let max_age_len = max_age.map_or(0, |secs| {
                MAX_AGE.len() + secs.checked_ilog10().map_or(1, |d| d as usize + 1)
            });
            let mut cookie = String::with_capacity(
                strings.prefix.len() + TOKEN_LEN + strings.attributes.len() + max_age_len,
            );
            cookie.push_str(&strings.prefix);
            issued.token.expose_to(&mut cookie);
            cookie.push_str(&strings.attributes);
            if let Some(secs) = max_age {
                let _ = write!(cookie, "{MAX_AGE}{secs}");
            }
            if let Ok(v) = HeaderValue::try_from(cookie) {
                headers.append(SET_COOKIE, v);
            }
        }
        _ if outcome.clear_cookie && config.transport.cookie() => {
            if let Some(v) = &config.cookie.clear {
                headers.append(SET_COOKIE, v.clone());
                touched_cookie = true;
            }
        }
        _ => {}
    }
    if outcome.logged_out && config.clear_site_data {
        headers.insert(
            HeaderName::from_static("clear-site-data"),
            HeaderValue::from_static("\"cookies\", \"storage\""),
        );
    }
    let signed_in = outcome.signed_in && config.no_store_when_signed_in;
    if touched_cookie || outcome.wrote || signed_in {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
