//! Authorization extractors: [`RequireAuth`], [`RequireRole`], [`RequireFreshAuth`] (the
//! route layers of [`require_role`](crate::require_role) live in `require/`). Each loads the
//! session from the store on every request and checks what the server holds; nothing in the
//! request can claim a role (SEC-13, SEC-14).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use sessionward_core::{RoleSet, Timestamp, UserId};

use crate::rejection::AuthRejection;
use crate::session::Session;

/// A type that names a role. Declare one with [`role!`](crate::role):
///
/// ```
/// sessionward::role!(
///     /// May change other users' roles.
///     pub Admin = "admin"
/// );
/// use sessionward::Role;
/// assert_eq!(Admin::NAME, "admin");
/// ```
pub trait Role: Send + Sync + 'static {
    /// The role's name, as stored in sessions' role sets.
    const NAME: &'static str;
}

/// Declares a unit type naming a role, for [`RequireRole`]. See [`Role`].
#[macro_export]
macro_rules! role {
    ($(#[$meta:meta])* $vis:vis $name:ident = $role:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::Role for $name {
            const NAME: &'static str = $role;
        }
    };
}

fn session_of(parts: &Parts) -> Result<Session, AuthRejection> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or(AuthRejection::MissingSessionLayer)
}

/// The signed-in user and roles, or the reason there are none. A store failure is
/// `StoreUnavailable`, never "not signed in".
pub(crate) async fn signed_in(session: &Session) -> Result<(UserId, RoleSet), AuthRejection> {
    let user = session
        .user()
        .await
        .map_err(|_| AuthRejection::StoreUnavailable)?
        .ok_or(AuthRejection::Unauthenticated)?;
    let roles = session
        .roles()
        .await
        .map_err(|_| AuthRejection::StoreUnavailable)?;
    Ok((user, roles))
}

/// Extracts the signed-in user; 401 if there is none, 503 if the store fails.
///
/// `Option<RequireAuth>` is `None` for a visitor who is not signed in (and still 503 on a
/// store failure).
///
/// ```no_run
/// use sessionward::RequireAuth;
///
/// async fn me(auth: RequireAuth) -> String {
///     format!("{} {:?}", auth.user, auth.roles)
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequireAuth {
    /// The signed-in user.
    pub user: UserId,
    /// Their session's roles.
    pub roles: RoleSet,
    /// The session.
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for RequireAuth {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        let (user, roles) = signed_in(&session).await?;
        Ok(Self {
            user,
            roles,
            session,
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequireAuth {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Self as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(auth) => Ok(Some(auth)),
            Err(AuthRejection::Unauthenticated) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Extracts a signed-in user whose session holds the role `R`: 401 if not signed in, 403
/// without the role, 503 if the store fails.
///
/// `Option<RequireRole<R>>` is `None` when not signed in or without the role (and still 503
/// on a store failure).
///
/// ```no_run
/// use sessionward::{RequireRole, role};
///
/// role!(Admin = "admin");
///
/// async fn admin_page(admin: RequireRole<Admin>) -> String {
///     format!("hello, {}", admin.user)
/// }
/// ```
#[non_exhaustive]
pub struct RequireRole<R: Role> {
    /// The signed-in user.
    pub user: UserId,
    /// Their session's roles (holding `R::NAME`).
    pub roles: RoleSet,
    /// The session.
    pub session: Session,
    _role: PhantomData<fn() -> R>,
}

impl<R: Role> Clone for RequireRole<R> {
    fn clone(&self) -> Self {
        Self {
            user: self.user.clone(),
            roles: self.roles.clone(),
            session: self.session.clone(),
            _role: PhantomData,
        }
    }
}

impl<R: Role> fmt::Debug for RequireRole<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRole")
            .field("role", &R::NAME)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl<R: Role, S: Send + Sync> FromRequestParts<S> for RequireRole<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        let (user, roles) = signed_in(&session).await?;
        if !roles.contains(R::NAME) {
            crate::events::denied(session.events(), R::NAME);
            return Err(AuthRejection::Forbidden);
        }
        Ok(Self {
            user,
            roles,
            session,
            _role: PhantomData,
        })
    }
}

/// Extracts a user who signed in within the last `MAX_AGE_SECS` seconds (default 300), for
/// sensitive operations (change email or password, delete the account). Otherwise 401 with
/// the error code `reauthentication_required`, which tells the client to ask for the
/// credentials again; 401 `unauthenticated` if not signed in at all (SEC-25).
///
/// `Option<RequireFreshAuth>` is `None` when not signed in or signed in too long ago (and
/// still 503 on a store failure).
///
/// ```no_run
/// use sessionward::RequireFreshAuth;
///
/// // Signed in within the last 5 minutes:
/// async fn change_email(auth: RequireFreshAuth) -> &'static str { "ok" }
/// // Within the last minute:
/// async fn delete_account(auth: RequireFreshAuth<60>) -> &'static str { "ok" }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequireFreshAuth<const MAX_AGE_SECS: u64 = 300> {
    /// The signed-in user.
    pub user: UserId,
    /// Their session's roles.
    pub roles: RoleSet,
    /// When they signed in.
    pub authenticated_at: Timestamp,
    /// The session.
    pub session: Session,
}

impl<const MAX_AGE_SECS: u64, S: Send + Sync> FromRequestParts<S>
    for RequireFreshAuth<MAX_AGE_SECS>
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let session = session_of(parts)?;
        let (user, roles) = signed_in(&session).await?;
        let authenticated_at = session
            .authenticated_at()
            .await
            .map_err(|_| AuthRejection::StoreUnavailable)?
            .ok_or(AuthRejection::ReauthenticationRequired)?;
        let now = session.now();
        if now.saturating_since(authenticated_at) > Duration::from_secs(MAX_AGE_SECS) {
            return Err(AuthRejection::ReauthenticationRequired);
        }
        Ok(Self {
            user,
            roles,
            authenticated_at,
            session,
        })
    }
}
