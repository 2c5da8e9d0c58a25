//! [`CurrentUser`]: the signed-in user as the application's own type, loaded through
//! [`LoadUser`] at most once per request.

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use sessionward_core::{RoleSet, UserId};

use crate::auth::signed_in;
use crate::error::json_response;
use crate::rejection::AuthRejection;
use crate::session::Session;

const BACKEND_UNAVAILABLE: &str = r#"{"error":"user_backend_unavailable"}"#;

/// Loads the application's user type from its id, for [`CurrentUser`]. `S` is the router's
/// state, where the user directory (a database pool, a map) lives.
///
/// `Ok(None)` means the user no longer exists (deleted, or disabled if the application says
/// so): the request is answered 401 and the session is ended. An `Err` is a 503, never a pass.
///
/// ```no_run
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use sessionward::{CurrentUser, LoadUser, UserId};
///
/// #[derive(Clone)]
/// struct AppState { users: Arc<HashMap<String, User>> }
///
/// #[derive(Clone, Debug)]
/// struct User { name: String, email: String }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the user directory is unavailable")]
/// struct DirectoryError;
///
/// impl LoadUser<AppState> for User {
///     type Error = DirectoryError;
///
///     async fn load_user(id: &UserId, state: &AppState) -> Result<Option<Self>, DirectoryError> {
///         Ok(state.users.get(id.as_str()).cloned())
///     }
/// }
///
/// async fn profile(user: CurrentUser<User>) -> String {
///     format!("{} <{}>", user.name, user.email)
/// }
/// ```
pub trait LoadUser<S = ()>: Sized + Clone + Send + Sync + 'static {
    /// Why the user could not be loaded (the backend failed).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The user with this id, `None` if there is none.
    fn load_user(
        id: &UserId,
        state: &S,
    ) -> impl Future<Output = Result<Option<Self>, Self::Error>> + Send;
}

/// The signed-in user, as the application's type `U` (see [`LoadUser`]), with their roles and
/// the session. Dereferences to `U`.
///
/// | request | answer |
/// | --- | --- |
/// | not signed in | 401 (answered per kind of client, like [`RequireAuth`](crate::RequireAuth)) |
/// | signed in, `load_user` finds no such user | 401, and the session is ended (record deleted, cookie cleared): a deleted account signs out everywhere it is used |
/// | `load_user` fails | 503 `user_backend_unavailable`, the error logged; never a pass |
/// | the session store fails | 503 |
///
/// The user is loaded at most once per request, whatever number of extractors ask (it is
/// cached in the request's extensions). `Option<CurrentUser<U>>` is `None` for the two 401
/// cases and still fails on the 503s.
#[derive(Clone)]
#[non_exhaustive]
pub struct CurrentUser<U> {
    /// The user, as `load_user` returned them.
    pub user: U,
    /// Their id.
    pub id: UserId,
    /// Their session's roles.
    pub roles: RoleSet,
    /// The session.
    pub session: Session,
}

impl<U> Deref for CurrentUser<U> {
    type Target = U;
    fn deref(&self) -> &U {
        &self.user
    }
}

impl<U: fmt::Debug> fmt::Debug for CurrentUser<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentUser")
            .field("user", &self.user)
            .field("id", &self.id)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Why [`CurrentUser`] refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum CurrentUserRejection<E> {
    /// Not signed in, the user no longer exists, the store failed, or there is no
    /// [`SessionLayer`](crate::SessionLayer): as [`AuthRejection`].
    Auth(AuthRejection),
    /// [`LoadUser::load_user`] failed: 503.
    Backend(E),
}

impl<E> CurrentUserRejection<E> {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(a) => a.status(),
            Self::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl<E: std::error::Error> IntoResponse for CurrentUserRejection<E> {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(a) => a.into_response(),
            Self::Backend(e) => {
                tracing::error!(target: "sessionward", error = %e, "loading the signed-in user failed");
                json_response(StatusCode::SERVICE_UNAVAILABLE, BACKEND_UNAVAILABLE)
            }
        }
    }
}

impl<E: std::error::Error> fmt::Display for CurrentUserRejection<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auth(a) => fmt::Display::fmt(a, f),
            Self::Backend(e) => write!(f, "loading the signed-in user failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CurrentUserRejection<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Auth(a) => Some(a),
            Self::Backend(e) => Some(e),
        }
    }
}

/// What a request loaded for a user id: the cache in the request's extensions.
#[derive(Clone)]
struct Loaded<U> {
    id: UserId,
    user: Option<U>,
}

impl<U, S> FromRequestParts<S> for CurrentUser<U>
where
    U: LoadUser<S>,
    S: Send + Sync,
{
    type Rejection = CurrentUserRejection<U::Error>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session =
            parts
                .extensions
                .get::<Session>()
                .cloned()
                .ok_or(CurrentUserRejection::Auth(
                    AuthRejection::MissingSessionLayer,
                ))?;
        let (id, roles) = signed_in(&session)
            .await
            .map_err(CurrentUserRejection::Auth)?;
        let cached = parts
            .extensions
            .get::<Loaded<U>>()
            .filter(|l| l.id == id)
            .map(|l| l.user.clone());
        let user = match cached {
            Some(user) => user,
            None => {
                let user = U::load_user(&id, state)
                    .await
                    .map_err(CurrentUserRejection::Backend)?;
                parts.extensions.insert(Loaded {
                    id: id.clone(),
                    user: user.clone(),
                });
                user
            }
        };
        let Some(user) = user else {
            // The account is gone: its session ends with this request.
            tracing::info!(
                target: "sessionward", event = "session.user_unknown",
                "the signed-in user no longer exists; ending the session"
            );
            session.logout();
            return Err(CurrentUserRejection::Auth(AuthRejection::Unauthenticated));
        };
        Ok(Self {
            user,
            id,
            roles,
            session,
        })
    }
}

impl<U, S> OptionalFromRequestParts<S> for CurrentUser<U>
where
    U: LoadUser<S>,
    S: Send + Sync,
{
    type Rejection = CurrentUserRejection<U::Error>;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Self as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(u) => Ok(Some(u)),
            Err(CurrentUserRejection::Auth(AuthRejection::Unauthenticated)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
