//! `Option<..>` extraction ([`OptionalFromRequestParts`]) for the extractors that do not
//! have it beside their definition: `Option<Session>` and `Option<Sessions>` are `None`
//! without a [`SessionLayer`](crate::SessionLayer); `Option<RequireRole<R>>` and
//! `Option<RequireFreshAuth<N>>` are `None` when the requirement is not met (not signed in,
//! without the role, signed in too long ago), and still fail with 503 when the store fails
//! (never a silent `None`) and with 500 without the layer. `Option<RequireAuth>` is defined
//! in `auth.rs`, `Option<CurrentUser<U>>` in `current_user.rs`.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::admin::Sessions;
use crate::auth::{RequireFreshAuth, RequireRole, Role};
use crate::rejection::AuthRejection;
use crate::session::Session;

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Sessions {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Session>().map(Session::sessions))
    }
}

/// `None` for the rejections that mean "the requirement is not met"; the others stay errors.
fn unmet_is_none<T>(r: Result<T, AuthRejection>) -> Result<Option<T>, AuthRejection> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(
            AuthRejection::Unauthenticated
            | AuthRejection::Forbidden
            | AuthRejection::ReauthenticationRequired,
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

impl<R: Role, S: Send + Sync> OptionalFromRequestParts<S> for RequireRole<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, AuthRejection> {
        unmet_is_none(<Self as FromRequestParts<S>>::from_request_parts(parts, state).await)
    }
}

impl<const MAX_AGE_SECS: u64, S: Send + Sync> OptionalFromRequestParts<S>
    for RequireFreshAuth<MAX_AGE_SECS>
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, AuthRejection> {
        unmet_is_none(<Self as FromRequestParts<S>>::from_request_parts(parts, state).await)
    }
}
