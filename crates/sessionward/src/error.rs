//! [`SessionError`], and the responses the layer and the extractors answer with.

use axum_core::response::{IntoResponse, Response as AxumResponse};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use sessionward_core::{DataError, RngError, StoreError};

/// The one body of every 401 caused by a missing, malformed, unknown, expired or revoked
/// session: the same bytes whatever the cause (SEC-13).
pub(crate) const UNAUTHENTICATED: &str = r#"{"error":"unauthenticated"}"#;
pub(crate) const FORBIDDEN: &str = r#"{"error":"forbidden"}"#;
pub(crate) const REAUTHENTICATE: &str = r#"{"error":"reauthentication_required"}"#;
pub(crate) const UNAVAILABLE: &str = r#"{"error":"session_store_unavailable"}"#;
pub(crate) const MISSING_LAYER: &str = "Missing request extension: the session is not available. \
Perhaps you forgot to add `SessionLayer` to your router or service stack (`.layer(SessionLayer::new(store))`), \
or this route sits outside it?";

/// A JSON error response; never cached.
/// A body type that cannot hold the text gets an empty body and no `Content-Type`.
pub(crate) fn json_response<B: Default + 'static>(
    status: StatusCode,
    body: &'static str,
) -> Response<B> {
    let text = crate::body::text(body);
    let has_text = text.is_some();
    let mut res = Response::new(text.unwrap_or_default());
    *res.status_mut() = status;
    let h = res.headers_mut();
    if has_text {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Why a [`Session`](crate::Session) operation failed. As a response: 503 for a store or
/// random-generator failure (never a pass, never "anonymous"), 413 for data over the limit,
/// 401 when an operation needs a signed-in user, 409 when the session or the user's
/// authorization changed while the request ran, 500 for values that do not (de)serialize.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed.
    #[error("the session store failed")]
    Store(#[source] StoreError),
    /// The session data is corrupt or would exceed the configured limit.
    #[error("invalid session data")]
    Data(#[from] DataError),
    /// A value could not be serialized or deserialized.
    #[error("a session value could not be (de)serialized")]
    Serde(#[from] serde_json::Error),
    /// The operation needs a signed-in user.
    #[error("no user is signed in")]
    NotSignedIn,
    /// The operating system's random generator failed; no ID was drawn.
    #[error("no session ID could be drawn")]
    Rng(#[from] RngError),
    /// The session changed while the request ran (for example an administrator changed its
    /// roles) in a way this request's change cannot be applied on top of. 409; the client may
    /// retry.
    #[error("the session changed while the request ran")]
    Conflict,
    /// [`Session::set_lifetime`](crate::Session::set_lifetime) got a zero, over-long or
    /// inconsistent lifetime.
    #[error("invalid session lifetime")]
    InvalidLifetime,
    /// The user's authorization changed (roles set, sessions ended, account disabled) while
    /// this request signed them in or changed their roles, so what it decided may be stale:
    /// the store refused the new session (SEC-16). 409 with the error code
    /// `authorization_changed`; nothing was written and no cookie is set. The client signs in
    /// again (a new request reads the new roles), it does not replay the same answer.
    #[error("the user's authorization changed while the request ran")]
    AuthorizationChanged,
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Data(d) => Self::Data(d),
            StoreError::AuthorizationChanged => Self::AuthorizationChanged,
            e => Self::Store(e),
        }
    }
}

impl SessionError {
    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Store(_) | Self::Rng(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Data(DataError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotSignedIn => StatusCode::UNAUTHORIZED,
            Self::Conflict | Self::AuthorizationChanged => StatusCode::CONFLICT,
            Self::Data(_) | Self::Serde(_) | Self::InvalidLifetime => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn body(&self) -> &'static str {
        match self {
            Self::Store(_) | Self::Rng(_) => UNAVAILABLE,
            Self::Data(DataError::TooLarge { .. }) => r#"{"error":"session_data_too_large"}"#,
            Self::NotSignedIn => UNAUTHENTICATED,
            Self::Conflict => r#"{"error":"session_changed"}"#,
            Self::AuthorizationChanged => r#"{"error":"authorization_changed"}"#,
            Self::InvalidLifetime => r#"{"error":"invalid_session_lifetime"}"#,
            Self::Data(_) | Self::Serde(_) => r#"{"error":"session_data_invalid"}"#,
        }
    }

    /// This error as a response with any body type (the layer uses it too).
    pub(crate) fn response<B: Default + 'static>(&self) -> Response<B> {
        let mut res = json_response(self.status(), self.body());
        if matches!(self, Self::NotSignedIn) {
            // Answered for the kind of client, like the extractors' 401 (SEC-42).
            res.extensions_mut().insert(crate::sign_in::NeedsSignIn(
                crate::rejection::AuthRejection::Unauthenticated,
            ));
        }
        res
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> AxumResponse {
        if self.status().is_server_error() {
            tracing::error!(target: "sessionward", error = %self, "session operation failed");
        }
        self.response()
    }
}
