//! The catalogue of the tracing events the pipeline emits (SEC-34), in one place.
//!
//! Every event has the target `sessionward` and a field `event` naming it. A key appears only
//! as its 4-byte hash prefix (`SessionKey::short`); a token never appears.
//!
//! | event | level | fields | when |
//! | --- | --- | --- | --- |
//! | `session.malformed` | info | `via` | a value that is not a well-formed ID was presented |
//! | `session.ambiguous` | warn | `via` | several different IDs were presented |
//! | `session.unknown` | info | `key` | an unknown or expired ID was presented |
//! | `session.anomaly` | warn | `key`, `bound` | the user agent differs from the record's |
//! | `session.store_error` | error | `key` (on load), `error` | the store failed |
//! | `session.created` | info | `key` (, `reason`) | a new session was stored |
//! | `session.rotated` | info | `key`, `reason` | a session got a new ID |
//! | `session.gone` | info | `key` | the session ended while the request ran |
//! | `session.authorization_changed` | warn | `key`, `reason` | a sign-in or privilege change was refused: the user's authorization changed while it ran |
//! | `session.destroyed` | info | `key` | `logout()` deleted the session |
//! | `session.denied` | info | `role` | signed in without the required role |
//! | `session.revoked` | info | `sessions` | an admin ended a user's sessions |
//! | `session.roles_changed` | info | `sessions` | an admin changed a user's roles |
//! | `request.cross_origin_blocked` | warn | `method` | a cross-site unsafe request was refused |

use http::Method;
use sessionward_core::{SessionKey, StoreError};

use crate::error::SessionError;
use crate::presented::Via;

pub(crate) fn malformed(via: Via) {
    tracing::info!(
        target: "sessionward", event = "session.malformed", via = ?via,
        "malformed session ID presented"
    );
}

pub(crate) fn ambiguous(via: Via) {
    tracing::warn!(
        target: "sessionward", event = "session.ambiguous", via = ?via,
        "several different session IDs presented; ignoring all (cookie tossing?)"
    );
}

pub(crate) fn unknown(key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.unknown", key = %key.short(),
        "unknown or expired session ID presented"
    );
}

pub(crate) fn anomaly(key: &SessionKey, bound: bool) {
    tracing::warn!(
        target: "sessionward", event = "session.anomaly", key = %key.short(), bound,
        "session presented with a different user agent"
    );
}

pub(crate) fn load_failed(key: &SessionKey, error: &StoreError) {
    tracing::error!(
        target: "sessionward", event = "session.store_error", key = %key.short(), error = %error,
        "session store failed to load"
    );
}

pub(crate) fn commit_failed(error: &SessionError) {
    tracing::error!(
        target: "sessionward", event = "session.store_error", error = %error,
        "session store failed while completing the request"
    );
}

pub(crate) fn created(key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.created", key = %key.short(),
        "session created"
    );
}

/// A sign-in or a privilege change issued a new ID: `rotated` when the old record was
/// rotated, otherwise a new record was created.
pub(crate) fn issued(key: &SessionKey, rotated: bool, reason: &'static str) {
    tracing::info!(
        target: "sessionward",
        event = if rotated { "session.rotated" } else { "session.created" },
        key = %key.short(),
        reason,
        "session ID issued"
    );
}

/// The store refused the new session of a sign-in (`reason` `login`) or a privilege change:
/// the user's authorization changed while the request ran (SEC-16).
pub(crate) fn authorization_changed(key: &SessionKey, reason: &'static str) {
    tracing::warn!(
        target: "sessionward", event = "session.authorization_changed", key = %key.short(),
        reason,
        "the user's authorization changed while this request ran; its new session was refused"
    );
}

pub(crate) fn gone(key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.gone", key = %key.short(),
        "session ended while the request ran; its changes were dropped"
    );
}

pub(crate) fn destroyed(key: &SessionKey) {
    tracing::info!(
        target: "sessionward", event = "session.destroyed", key = %key.short(),
        "session destroyed by logout"
    );
}

pub(crate) fn denied(role: &str) {
    tracing::info!(
        target: "sessionward", event = "session.denied", role = %role,
        "signed in without the required role"
    );
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
pub(crate) fn cross_origin_blocked(method: &Method, with_cookie: bool) {
    if with_cookie {
        tracing::warn!(
            target: "sessionward", event = "request.cross_origin_blocked", method = %method,
            "cross-site request with an unsafe method and the session cookie refused"
        );
    } else {
        tracing::warn!(
            target: "sessionward", event = "request.cross_origin_blocked", method = %method,
            "cross-site request with an unsafe method refused"
        );
    }
}
