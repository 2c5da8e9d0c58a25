//! The catalogue of the tracing events the pipeline emits (SEC-34), in one place.
//!
//! Every event has the target `sessionward` and a field `event` naming it. A key appears only
//! as its 4-byte hash prefix (`SessionKey::short`); a token never appears. Events of a request
//! carry `client`, the request's [`ClientAddr`] (`-` when unknown).
//!
//! The kinds marked *limited* can be triggered at will by any client, so each has a budget
//! (`SessionConfigBuilder::event_rate_limit`, default 60 lines a minute, on the configured
//! clock): past it lines are counted, not written, and the next line of the kind that goes out
//! is preceded by `events.suppressed` (warn, `kind`, `suppressed`). `session.anomaly` is also
//! written at most once per session (per process, for the last 10,000 sessions with one).
//!
//! | event | level | fields | when |
//! | --- | --- | --- | --- |
//! | `session.malformed` | info | `via`, `client` | limited: a value that is not a well-formed ID was presented |
//! | `session.ambiguous` | warn | `via`, `client` | limited: several different IDs were presented |
//! | `session.unknown` | info | `key`, `client` | limited: an unknown or expired ID was presented |
//! | `session.anomaly` | warn | `key`, `bound`, `client` | limited, once per session: the user agent differs from the record's |
//! | `session.store_error` | error | `key` (on load), `error`, `client` | limited: the store failed |
//! | `session.logout_failed` | error | `error`, `client` | the store failed to end a session on `logout()`; the cookie was cleared anyway |
//! | `session.created` | info | `key`, `client` | limited: a new anonymous session was stored |
//! | `session.created` | info | `key`, `reason`, `client` | a sign-in created a session |
//! | `session.rotated` | info | `key`, `reason`, `client` | a session got a new ID |
//! | `session.gone` | info | `key`, `client` | the session ended while the request ran |
//! | `session.authorization_changed` | warn | `key`, `reason`, `client` | a sign-in or privilege change was refused: the user's authorization changed while it ran |
//! | `session.destroyed` | info | `key`, `client` | `logout()` deleted the session |
//! | `session.denied` | info | `role`, `client` | limited: signed in without the required role |
//! | `session.guessing` | warn | `client`, `failures` | limited: the guess throttle blocked a client |
//! | `session.throttled` | info | `client`, `retry_after` | limited: a blocked client's request got 429 |
//! | `session.revoked` | info | `sessions` | an admin ended a user's sessions |
//! | `session.roles_changed` | info | `sessions` | an admin changed a user's roles |
//! | `request.cross_origin_blocked` | warn | `method`, `client` | limited: a cross-site unsafe request was refused |
//! | `events.suppressed` | warn | `kind`, `suppressed` | lines of a limited kind were dropped |

use std::fmt;

use http::Method;
use sessionward_core::{SessionKey, StoreError};

use crate::client::ClientAddr;
use crate::error::SessionError;
use crate::event_limit::{EventLimiter, Kind};
use crate::presented::Via;

/// What an event of a request needs: the rate limits, and the client.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) limits: &'a EventLimiter,
    pub(crate) client: Option<ClientAddr>,
}

/// Whether an event line of `kind` at `level` goes out: only if a subscriber takes it (checked
/// first, so that without one an event costs neither the rate limit's clock reading nor its
/// lock) and the rate limit lets it through.
macro_rules! allowed {
    ($cx:expr, $kind:expr, $level:ident) => {
        tracing::enabled!(target: "sessionward", tracing::Level::$level) && $cx.allow($kind)
    };
}

impl Cx<'_> {
    fn allow(self, kind: Kind) -> bool {
        self.limits.allow(kind)
    }

    fn client(self) -> Client {
        Client(self.client)
    }
}

/// The `client` field: the address, or `-`.
struct Client(Option<ClientAddr>);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => c.fmt(f),
            None => f.write_str("-"),
        }
    }
}

pub(crate) fn malformed(cx: Cx<'_>, via: Via) {
    if allowed!(cx, Kind::Malformed, INFO) {
        tracing::info!(
            target: "sessionward", event = "session.malformed", via = ?via,
            client = %cx.client(), "malformed session ID presented"
        );
    }
}

pub(crate) fn ambiguous(cx: Cx<'_>, via: Via) {
    if allowed!(cx, Kind::Ambiguous, WARN) {
        tracing::warn!(
            target: "sessionward", event = "session.ambiguous", via = ?via,
            client = %cx.client(),
            "several different session IDs presented; ignoring all (cookie tossing?)"
        );
    }
}

pub(crate) fn unknown(cx: Cx<'_>, key: &SessionKey) {
    if allowed!(cx, Kind::Unknown, INFO) {
        tracing::info!(
            target: "sessionward", event = "session.unknown", key = %key.short(),
            client = %cx.client(), "unknown or expired session ID presented"
        );
    }
}

/// Once per session (as far as the limiter remembers), then rate limited.
pub(crate) fn anomaly(cx: Cx<'_>, key: &SessionKey, bound: bool) {
    if cx.limits.first_anomaly(key) && allowed!(cx, Kind::Anomaly, WARN) {
        tracing::warn!(
            target: "sessionward", event = "session.anomaly", key = %key.short(), bound,
            client = %cx.client(), "session presented with a different user agent"
        );
    }
}

pub(crate) fn load_failed(cx: Cx<'_>, key: &SessionKey, error: &StoreError) {
    if allowed!(cx, Kind::StoreError, ERROR) {
        tracing::error!(
            target: "sessionward", event = "session.store_error", key = %key.short(),
            error = %error, client = %cx.client(), "session store failed to load"
        );
    }
}

pub(crate) fn commit_failed(cx: Cx<'_>, error: &SessionError) {
    if allowed!(cx, Kind::StoreError, ERROR) {
        tracing::error!(
            target: "sessionward", event = "session.store_error", error = %error,
            client = %cx.client(), "session store failed while completing the request"
        );
    }
}

/// Not rate limited: a sign-out that did not happen server-side must always be visible.
pub(crate) fn logout_failed(cx: Cx<'_>, error: &SessionError) {
    tracing::error!(
        target: "sessionward", event = "session.logout_failed", error = %error,
        client = %cx.client(),
        "session store failed during logout; the cookie was cleared, the record may live on"
    );
}

/// A new anonymous session.
pub(crate) fn created(cx: Cx<'_>, key: &SessionKey) {
    if allowed!(cx, Kind::Created, INFO) {
        tracing::info!(
            target: "sessionward", event = "session.created", key = %key.short(),
            client = %cx.client(), "session created"
        );
    }
}

pub(crate) fn guessing(cx: Cx<'_>, failures: u32) {
    if allowed!(cx, Kind::Guessing, WARN) {
        tracing::warn!(
            target: "sessionward", event = "session.guessing", client = %cx.client(), failures,
            "client blocked by the guess throttle: too many malformed or unknown session IDs"
        );
    }
}

pub(crate) fn throttled(cx: Cx<'_>, retry_after: u64) {
    if allowed!(cx, Kind::Throttled, INFO) {
        tracing::info!(
            target: "sessionward", event = "session.throttled", client = %cx.client(),
            retry_after, "request with a session ID refused: the client is blocked (429)"
        );
    }
}

/// A sign-in or a privilege change issued a new ID: `rotated` when the old record was
/// rotated, otherwise a new record was created.
pub(crate) fn issued(cx: Cx<'_>, key: &SessionKey, rotated: bool, reason: &'static str) {
    tracing::info!(
        target: "sessionward",
        event = if rotated { "session.rotated" } else { "session.created" },
        key = %key.short(),
        reason,
        client = %cx.client(),
        "session ID issued"
    );
}

/// The store refused the new session of a sign-in (`reason` `login`) or a privilege change:
/// the user's authorization changed while the request ran (SEC-16).
pub(crate) fn authorization_changed(cx: Cx<'_>, key: &SessionKey, reason: &'static str) {
    tracing::warn!(
        target: "sessionward", event = "session.authorization_changed", key = %key.short(),
        reason, client = %cx.client(),
        "the user's authorization changed while this request ran; its new session was refused"
    );
}

pub(crate) fn gone(cx: Cx<'_>, key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.gone", key = %key.short(),
        client = %cx.client(), "session ended while the request ran; its changes were dropped"
    );
}

pub(crate) fn destroyed(cx: Cx<'_>, key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.destroyed", key = %key.short(),
        client = %cx.client(), "session destroyed by logout"
    );
}

pub(crate) fn denied(cx: Cx<'_>, role: &str) {
    if allowed!(cx, Kind::Denied, INFO) {
        tracing::info!(
            target: "sessionward", event = "session.denied", role = %role,
            client = %cx.client(), "signed in without the required role"
        );
    }
}

pub(crate) fn revoked(sessions: u64) {
    tracing::info!(
        target: "sessionward", event = "session.revoked", sessions,
        "sessions of a user revoked"
    );
}

pub(crate) fn roles_changed(sessions: u64) {
    tracing::info!(
        target: "sessionward", event = "session.roles_changed", sessions,
        "roles of a user's sessions changed"
    );
}

/// `with_cookie`: refused by the session layer's own check (the request carried the session
/// cookie), not by a [`CrossOriginGuard`](crate::CrossOriginGuard) layer.
pub(crate) fn cross_origin_blocked(cx: Cx<'_>, method: &Method, with_cookie: bool) {
    if !allowed!(cx, Kind::CrossOriginBlocked, WARN) {
        return;
    }
    if with_cookie {
        tracing::warn!(
            target: "sessionward", event = "request.cross_origin_blocked", method = %method,
            client = %cx.client(),
            "cross-site request with an unsafe method and the session cookie refused"
        );
    } else {
        tracing::warn!(
            target: "sessionward", event = "request.cross_origin_blocked", method = %method,
            client = %cx.client(), "cross-site request with an unsafe method refused"
        );
    }
}
