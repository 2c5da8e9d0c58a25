//! Named rejections of the extractors.

use axum_core::response::{IntoResponse, Response as AxumResponse};
use http::{Response, StatusCode};

use crate::error::{
    FORBIDDEN, MISSING_LAYER, REAUTHENTICATE, UNAUTHENTICATED, UNAVAILABLE, json_response,
};

/// The [`Session`](crate::Session) extractor found no session in the request: the route is
/// not behind a [`SessionLayer`](crate::SessionLayer). A 500 whose text says how to fix it.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    /// 500.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The text of the response.
    #[must_use]
    pub fn body_text(&self) -> &'static str {
        MISSING_LAYER
    }
}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> AxumResponse {
        tracing::error!(target: "sessionward", "{MISSING_LAYER}");
        (self.status(), MISSING_LAYER).into_response()
    }
}

impl std::fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MISSING_LAYER)
    }
}

impl std::error::Error for MissingSessionLayer {}

/// Why an authorization extractor ([`RequireAuth`](crate::RequireAuth),
/// [`RequireRole`](crate::RequireRole), [`RequireFreshAuth`](crate::RequireFreshAuth)) or the
/// [`require_role`](crate::require_role) layer refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// Not signed in: no, a malformed, unknown, expired or revoked session ID. 401, with one
    /// body whatever the cause (SEC-13).
    Unauthenticated,
    /// Signed in without the required role. 403.
    Forbidden,
    /// Signed in too long ago for this operation: sign in again. 401 with the distinct error
    /// code `reauthentication_required`.
    ReauthenticationRequired,
    /// The store failed: 503, never a silent 403 or a pass (SEC-17).
    StoreUnavailable,
    /// No [`SessionLayer`](crate::SessionLayer) in front of the route: 500.
    MissingSessionLayer,
}

impl AuthRejection {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::ReauthenticationRequired => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingSessionLayer => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response, for any body type (used by the route layer too).
    /// A 401 is marked, so that the session layer answers it for the kind of client
    /// (a redirect to the sign-in page, `HX-Redirect`, `WWW-Authenticate`; SEC-42).
    pub(crate) fn to_response<B: Default + 'static>(self) -> Response<B> {
        let mut res = match self {
            Self::Unauthenticated => json_response(self.status(), UNAUTHENTICATED),
            Self::Forbidden => json_response(self.status(), FORBIDDEN),
            Self::ReauthenticationRequired => json_response(self.status(), REAUTHENTICATE),
            Self::StoreUnavailable => json_response(self.status(), UNAVAILABLE),
            Self::MissingSessionLayer => {
                tracing::error!(target: "sessionward", "{MISSING_LAYER}");
                let mut res = Response::new(crate::body::text(MISSING_LAYER).unwrap_or_default());
                *res.status_mut() = self.status();
                res
            }
        };
        if self.status() == StatusCode::UNAUTHORIZED {
            res.extensions_mut()
                .insert(crate::sign_in::NeedsSignIn(self));
        }
        res
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> AxumResponse {
        self.to_response()
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unauthenticated => "not signed in",
            Self::Forbidden => "signed in without the required role",
            Self::ReauthenticationRequired => "signed in too long ago: sign in again",
            Self::StoreUnavailable => "the session store is unavailable",
            Self::MissingSessionLayer => MISSING_LAYER,
        })
    }
}

impl std::error::Error for AuthRejection {}
