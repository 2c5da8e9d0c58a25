//! The handler API for who is signed in: sign-in, roles, lifetime, sign-out, the user's own
//! sessions, and the token handed to bearer clients.

use std::time::Duration;

use sessionward_core::{RoleSet, SessionHandle, SessionKey, SessionToken, Timestamp, UserId};

use super::Session;
use super::state::{Intent, Lifetime, Pending};
use crate::error::SessionError;
use crate::info::SessionInfo;

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
    /// `user` is anything that converts into a [`UserId`]: text (`"alice"`, a `String`), an
    /// integer (`42_i64`), or [`UserId::display`] of a UUID. `roles` is an array (`[]`,
    /// `["user"]`), a `Vec` or slice of strings, or a [`RoleSet`]; an iterator is
    /// `.collect::<RoleSet>()` first.
    ///
    /// ```no_run
    /// # async fn f(session: sessionward::Session) -> Result<(), sessionward::SessionError> {
    /// session.login("alice", []).await?; // no roles
    /// session.login(42_i64, ["user"]).await?;
    /// let roles: Vec<String> = vec!["user".into(), "admin".into()];
    /// session.login("root", &roles).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The session gets a new ID (the old one is dead once the response goes out) and keeps
    /// its data, unless it belonged to another user; the absolute timeout starts again, since
    /// the user just proved who they are (SEC-18).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Rng`] if no ID could be
    /// drawn.
    pub async fn login(
        &self,
        user: impl Into<UserId>,
        roles: impl Into<RoleSet>,
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
            roles: roles.into(),
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
    pub async fn set_roles(&self, roles: impl Into<RoleSet>) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let roles = roles.into();
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

    /// Chooses whether this session's cookie outlives the browser: `true` for "remember me" (a
    /// persistent cookie whose `Max-Age` is the session's remaining absolute lifetime, issued
    /// again with the remaining lifetime at every rotation), `false` for a browser-session
    /// cookie with no `Max-Age` or `Expires`, whatever the layer's
    /// [`persistent_cookies`](crate::SessionConfigBuilder::persistent_cookies) default says.
    /// The record keeps the choice, so it holds on every server and across rotations.
    ///
    /// Call it in the request that calls [`login`](Self::login) (before or after it). On a
    /// session signed in earlier, changing the choice rotates the ID (the new cookie carries
    /// the new choice); on a session that is not signed in and does not sign in in this
    /// request, it has no effect. Remembering does not lengthen the session: give it a longer
    /// lifetime with [`set_lifetime`](Self::set_lifetime).
    ///
    /// ```no_run
    /// # async fn f(session: sessionward::Session, remember_me: bool) -> Result<(), sessionward::SessionError> {
    /// session.login("alice", ["user"]).await?;
    /// session.remember(remember_me).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Rng`] if a rotation needed
    /// an ID and none could be drawn.
    pub async fn remember(&self, on: bool) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let config_default = self.config().persistent;
        let mut state = self.state();
        state.pending.persistent = Some(on);
        if matches!(state.pending.intent, Intent::None)
            && let Some(record) = state.loaded.live()
            && record.user.is_some()
            && record.persistent.unwrap_or(config_default) != on
        {
            let roles = record.roles.clone();
            state.draw_token()?;
            state.pending.intent = Intent::PrivilegeChange(roles);
        }
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

    /// Tells the store that the signed-in user's credentials changed (a new password, a
    /// revoked passkey, a reset): every other session of the user ends, atomically, and this
    /// one stays signed in, with its ID (SEC-27). Returns how many ended. Call it after the new
    /// credential is stored.
    ///
    /// It is built on the store's authorization epochs (SEC-16), not on a stored credential
    /// fingerprint: the store records the change time in the same atomic operation as the
    /// deletion, and refuses any sign-in whose request started before it (409
    /// `authorization_changed`). A sign-in that verified the old password while the change was
    /// being made therefore cannot leave a session behind, on any server and with any store,
    /// and nothing of the credential is kept in session records.
    ///
    /// ```no_run
    /// # async fn f(session: sessionward::Session) -> Result<(), sessionward::SessionError> {
    /// // ... verify the current password, store the new hash ...
    /// let ended = session.credential_changed().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user; [`SessionError::Store`].
    pub async fn credential_changed(&self) -> Result<u64, SessionError> {
        self.logout_other_sessions().await
    }

    /// Ends every other session of the signed-in user, now, and refuses every sign-in of the
    /// user still in flight elsewhere (SEC-16: the store records the change, and a sign-in that
    /// started before it is answered 409 `authorization_changed`). This session stays signed
    /// in. Returns how many ended. After a credential change, say so with
    /// [`credential_changed`](Self::credential_changed), which does this.
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
