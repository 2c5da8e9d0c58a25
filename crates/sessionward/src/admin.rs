//! [`Sessions`]: the application-wide handle for admin actions. The request's
//! [`Session`] hands it out, but the session module does not import this one.

use std::fmt;
use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use sessionward_core::{RoleSet, SessionHandle, UserId};

use crate::error::SessionError;
use crate::events;
use crate::info::SessionInfo;
use crate::rejection::MissingSessionLayer;
use crate::session::Session;
use crate::shared::Shared;

/// Admin actions on any user's sessions, from any handler: list, revoke, change roles. Every
/// action takes effect on the user's next request, on every server sharing the store,
/// because every request validates against the store (SEC-16, SEC-28).
///
/// Get it from [`SessionLayer::sessions`](crate::SessionLayer::sessions), from
/// [`Session::sessions`], or as an extractor.
///
/// ```no_run
/// use sessionward::{RequireRole, Sessions, role};
///
/// role!(Admin = "admin");
///
/// async fn demote(
///     _: RequireRole<Admin>,
///     sessions: Sessions,
/// ) -> Result<(), sessionward::SessionError> {
///     sessions.set_roles(&"alice".into(), ["user"]).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Sessions {
    shared: Arc<Shared>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.shared.store)
            .finish()
    }
}

impl Sessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The live sessions of `user`, oldest first.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn list(&self, user: &UserId) -> Result<Vec<SessionInfo>, SessionError> {
        let now = self.shared.config.clock.now();
        let records = self.shared.store.list_by_user(user, now).await?;
        Ok(records
            .iter()
            .map(|r| SessionInfo::from_record(r, None))
            .collect())
    }

    /// Ends every session of `user` (account disabled, password reset) and refuses every
    /// sign-in of `user` that is in flight (SEC-16): the store records the change, and a
    /// sign-in whose request started before it is answered 409 `authorization_changed`
    /// however late it reaches the store. Call it after the account is disabled in your user
    /// database, so a sign-in that starts later finds the account disabled. Returns how many
    /// sessions ended.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn revoke_user(&self, user: &UserId) -> Result<u64, SessionError> {
        let now = self.shared.config.clock.now();
        let n = self.shared.store.delete_by_user(user, None, now).await?;
        events::revoked(n);
        Ok(n)
    }

    /// Ends one session of `user` by handle; `false` if `user` has no session with it.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn revoke(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        Ok(self.shared.store.delete_by_handle(user, handle).await?)
    }

    /// Gives every session of `user` the roles `roles`, from their next request on, and
    /// refuses every sign-in of `user` that is in flight (SEC-16): a sign-in whose request
    /// started before the change read the old roles, and is answered 409
    /// `authorization_changed` however late it reaches the store. Call it after the roles are
    /// changed in your user database. Returns how many sessions changed.
    ///
    /// # Errors
    /// [`SessionError::Store`].
    pub async fn set_roles(
        &self,
        user: &UserId,
        roles: impl Into<RoleSet>,
    ) -> Result<u64, SessionError> {
        let roles: RoleSet = roles.into();
        let now = self.shared.config.clock.now();
        let n = self
            .shared
            .store
            .set_roles_for_user(user, &roles, now)
            .await?;
        events::roles_changed(n);
        Ok(n)
    }
}

impl Session {
    /// The application-wide handle for admin actions (list or revoke any user's sessions,
    /// change a user's roles).
    #[must_use]
    pub fn sessions(&self) -> Sessions {
        Sessions::new(self.shared().clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Sessions {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .map(Session::sessions)
            .ok_or(MissingSessionLayer)
    }
}
