//! The client address that sign-in throttling and the logs use: the library's
//! [`sessionward::ClientAddr`], which the session layer resolves once per request from the
//! same settings as the library's own events and guessing throttle (one source of truth).
//!
//! By default it is the TCP peer address, and `X-Forwarded-For` is ignored: any client can
//! write that header. Behind a reverse proxy, `--trusted-proxy` names the proxies' addresses
//! (IP addresses or CIDR ranges); for a request whose peer is one of them, the address is
//! taken from `X-Forwarded-For`, `--proxy-hops` entries from the right (1: the entry the
//! nearest proxy appended). A request from a trusted proxy with too short or a malformed
//! header falls back to the peer address. `main::session_config` hands both flags to
//! `SessionConfigBuilder::trusted_proxies`.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

/// The client address of the request (see the module docs). `0.0.0.0` if the server gave no
/// peer address, which `server.rs` always does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let resolved =
            <sessionward::ClientAddr as OptionalFromRequestParts<S>>::from_request_parts(
                parts, state,
            )
            .await?;
        Ok(Self(resolved.map_or(
            IpAddr::from([0, 0, 0, 0]),
            sessionward::ClientAddr::ip,
        )))
    }
}
