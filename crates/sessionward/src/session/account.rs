//! The handler API for who is signed in: sign-in, roles, lifetime, sign-out, the user's own
//! sessions, and the token handed to bearer clients.

use std::time::Duration;

use sessionward_core::{RoleSet, SessionHandle, SessionKey, SessionToken, Timestamp, UserId};

use super::Session;
use super::state::{Intent, Lifetime, Pending};
use crate::error::SessionError;
use crate::info::SessionInfo;

fn roles_of<R: AsRef<str>>(roles: impl IntoIterator<Item = R>) -> RoleSet {
    roles.into_iter().collect()
}

impl Session {
    /// The signed-in user, or `None` for an anonymous session or none.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed (fail closed: never "anonymous").
    pub async fn user(&self) -> Result<Option<UserId>, SessionError> {
        self.ensure_loaded().await?;
        Ok(self.state().live_user().cloned())
    }

    /// The roles: the authorization level, as the server holds it.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn roles(&self) -> Result<RoleSet, SessionError> {
        self.ensure_loaded().await?;
        Ok(self.state().roles())
    }

    /// When the user last proved their credentials (now, if they sign in in this request).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn authenticated_at(&self) -> Result<Option<Timestamp>, SessionError> {
        self.ensure_loaded().await?;
        let now = self.now();
        Ok(self.state().authenticated_at(now))
    }

    /// The public handle of the current session (`None` if there is none yet). Not a secret.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn handle(&self) -> Result<Option<SessionHandle>, SessionError> {
        self.ensure_loaded().await?;
        Ok(self.state().standing().map(|r| r.handle))
    }

    /// Signs `user` in with `roles`, after the application verified their credentials.
    ///
    /// The session gets a new ID (the old one is dead once the response goes out) and keeps
    /// its data, unless it belonged to another user; the absolute timeout starts again, since
    /// the user just proved who they are (SEC-18).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Rng`] if no ID could be
    /// drawn.
    pub async fn login<R: AsRef<str>>(
        &self,
        user: impl Into<UserId>,
        roles: impl IntoIterator<Item = R>,
    ) -> Result<(), SessionError> {
        let user = user.into();
        self.ensure_loaded().await?;
        // Draw the new ID first: if the generator fails, nothing in this request changed.
        let fresh = SessionToken::generate_with_handle()?;
        let mut state = self.state();
        // Data of another user's session does not carry over to this one.
        let other_user = state
            .loaded
            .live()
            .is_some_and(|r| r.user.as_ref().is_some_and(|u| *u != user));
        if other_user {
            state.drop_data();
        }
        let discard_old = other_user || state.pending.intent.discards_loaded();
        state.pending.intent = Intent::SignIn {
            user,
            roles: roles_of(roles),
            discard_old,
        };
        state.pending.new_token = Some(fresh);
        state.pending.token_taken = false;
        Ok(())
    }

    /// Changes the roles of the signed-in user's current session, and rotates its ID, as after
    /// any privilege change (SEC-19). To change the roles of every session of a user, use
    /// [`Sessions::set_roles`](crate::Sessions::set_roles).
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user.
    pub async fn set_roles<R: AsRef<str>>(
        &self,
        roles: impl IntoIterator<Item = R>,
    ) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let roles = roles_of(roles);
        match &mut state.pending.intent {
            Intent::SignIn { roles: r, .. } | Intent::PrivilegeChange(r) => *r = roles,
            Intent::None | Intent::SignOut => {
                if state.live_user().is_none() {
                    return Err(SessionError::NotSignedIn);
                }
                state.draw_token()?;
                state.pending.intent = Intent::PrivilegeChange(roles);
            }
        }
        Ok(())
    }

    /// Gives this session a lifetime of its own ("remember me"): the absolute expiry becomes
    /// `absolute` after sign-in (after creation, for an anonymous session), and the idle
    /// timeout `idle` if given. Stored in the record, so it holds across requests and servers.
    /// With [persistent cookies](crate::SessionConfigBuilder::persistent_cookies) and a cookie
    /// session, the cookie is re-issued with the matching `Max-Age`.
    ///
    /// Only a sign-in may lengthen a signed-in session's lifetime (SEC-22): call it in the
    /// request that calls [`login`](Self::login). Later, on a session signed in earlier, it can
    /// only shorten the lifetime.
    ///
    /// # Errors
    /// [`SessionError::InvalidLifetime`] for a zero `absolute` or `idle`, one over 400 days, or
    /// an `idle` longer than `absolute`; [`SessionError::Store`] if the store failed.
    pub async fn set_lifetime(
        &self,
        absolute: Duration,
        idle: Option<Duration>,
    ) -> Result<(), SessionError> {
        let valid = |d: Duration| d.as_secs() > 0 && d <= crate::config::MAX_LIFETIME;
        if !valid(absolute) || idle.is_some_and(|i| !valid(i) || i > absolute) {
            return Err(SessionError::InvalidLifetime);
        }
        self.ensure_loaded().await?;
        self.state().pending.lifetime = Some(Lifetime { absolute, idle });
        Ok(())
    }

    /// Ends the session: the record is deleted before the response goes out, and the cookie
    /// is cleared with the attributes that set it (SEC-26).
    pub fn logout(&self) {
        let mut state = self.state();
        state.drop_data();
        let token_taken = state.pending.token_taken;
        state.pending = Pending {
            intent: Intent::SignOut,
            token_taken,
            ..Pending::default()
        };
    }

    /// Ends every other session of the signed-in user, now (for example after a password
    /// change, SEC-27), and refuses every sign-in of the user still in flight elsewhere
    /// (SEC-16: the store records the change, and a sign-in that started before it is
    /// answered 409 `authorization_changed`). This session stays signed in. Returns how many
    /// ended.
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user; [`SessionError::Store`].
    pub async fn logout_other_sessions(&self) -> Result<u64, SessionError> {
        let user = self.user().await?.ok_or(SessionError::NotSignedIn)?;
        let current = self.current_key();
        let now = self.now();
        let n = self
            .store()
            .delete_by_user(&user, current.as_ref(), now)
            .await?;
        // A sign-in or privilege change later in this request is not stale for this change.
        let mut state = self.state();
        state.authorized_floor = Some(state.authorized_floor.map_or(now, |f| f.max(now)));
        Ok(n)
    }

    fn current_key(&self) -> Option<SessionKey> {
        self.state().current_key()
    }

    /// The signed-in user's live sessions, oldest first; `current` marks this one.
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user; [`SessionError::Store`].
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let user = self.user().await?.ok_or(SessionError::NotSignedIn)?;
        let current = self.current_key();
        let records = self.store().list_by_user(&user, self.now()).await?;
        Ok(records
            .iter()
            .map(|r| SessionInfo::from_record(r, current.as_ref()))
            .collect())
    }

    /// Ends one of the signed-in user's own sessions, by handle. `false` for an unknown handle
    /// and for another user's handle alike.
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user; [`SessionError::Store`].
    pub async fn end_session(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        let user = self.user().await?.ok_or(SessionError::NotSignedIn)?;
        Ok(self.store().delete_by_handle(&user, handle).await?)
    }

    /// The token of the session this request creates or rotates to, for clients that carry it
    /// as `Authorization: Bearer` (enable [`Transport::Bearer`](crate::Transport) or
    /// `CookieAndBearer`). Taking it means the response sets no cookie: the handler hands the
    /// token to the client itself. `None` when this request creates or rotates nothing, or when
    /// bearer transport is off.
    ///
    /// It is handed out once (a second call is `None`), and never to a request that presented
    /// its session in a cookie: a browser session's token stays out of reach of page scripts.
    /// Never log it, and never put it anywhere but the response to the client that owns it.
    #[must_use]
    pub fn issued_token(&self) -> Option<String> {
        if !self.config().transport.bearer() || self.inner.presented.via_cookie() {
            return None;
        }
        let mut state = self.state();
        if state.pending.token_taken {
            return None;
        }
        let token = state.pending.new_token.as_ref()?.0.expose();
        state.pending.token_taken = true;
        Some(token)
    }
}
