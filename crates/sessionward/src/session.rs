//! [`Session`]: the per-request session handle, and what the layer does with it when the
//! response comes back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::header::{CACHE_CONTROL, SET_COOKIE, USER_AGENT};
use http::{HeaderValue, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sessionward_core::{
    ChangeSet, DataChanges, DataError, RoleSet, RotateOutcome, SaveOutcome, SessionData,
    SessionHandle, SessionKey, SessionRecord, SessionStore, SessionToken, Timestamp, UserId,
};

use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::extract::Presented;
use crate::sessions::{SessionInfo, Sessions};

/// Longest user agent kept in a record, in bytes.
const MAX_USER_AGENT: usize = 256;

/// What the layer shares between requests.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: SessionConfig,
}

enum Loaded {
    /// Nobody asked yet (lazy: a route that never uses the session costs no store call).
    NotYet,
    /// The presented token names this live record.
    Live(SessionRecord),
    /// No live record: nothing, a malformed or ambiguous value, or an unknown or expired ID.
    Absent,
}

enum AuthChange {
    Login { user: UserId, roles: RoleSet },
    Roles(RoleSet),
}

#[derive(Clone, Copy)]
struct Lifetime {
    absolute: Duration,
    idle: Option<Duration>,
}

struct State {
    loaded: Loaded,
    /// The data as this request sees it (stored data plus this request's changes), parsed on
    /// first use.
    view: Option<Map<String, Value>>,
    changes: DataChanges,
    auth: Option<AuthChange>,
    logout: bool,
    lifetime: Option<Lifetime>,
    /// The token of the session this request creates or rotates to, drawn when that is
    /// decided so that a bearer client's handler can hand it out.
    new_token: Option<(SessionToken, SessionHandle)>,
    /// The handler took the new token to hand it out itself: set no cookie.
    token_taken: bool,
}

struct Inner {
    shared: Arc<Shared>,
    presented: Presented,
    user_agent: Option<HeaderValue>,
    load_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// The session of one request.
///
/// The [`SessionLayer`](crate::SessionLayer) puts it in the request extensions; axum handlers
/// take it as an extractor, and any tower service can read it with
/// `req.extensions().get::<Session>()`. Clones share the same state.
///
/// Nothing is loaded until a method needs the record (one store round trip, at most once per
/// request), and nothing is written until the response comes back: then the layer creates,
/// saves, rotates, touches or deletes, as the handler asked, and sets or clears the cookie. A
/// handler's 5xx response persists nothing.
///
/// ```no_run
/// use sessionward::Session;
///
/// async fn add_to_cart(session: Session) -> Result<String, sessionward::SessionError> {
///     let mut cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
///     cart.push("book-17".into());
///     session.insert("cart", &cart).await?;
///     Ok(format!("{} items", cart.len()))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let loaded = match &state.loaded {
            Loaded::NotYet => "not loaded",
            Loaded::Live(_) => "live",
            Loaded::Absent => "absent",
        };
        f.debug_struct("Session")
            .field("loaded", &loaded)
            .field("presented", &self.inner.presented.token().map(|t| t.key()))
            .finish_non_exhaustive()
    }
}

/// The user agent as a record keeps it: visible ASCII, truncated. Borrowed, so comparing it
/// on every load allocates nothing.
fn user_agent_str(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    Some(&s[..s.len().min(MAX_USER_AGENT)])
}

fn roles_of<R: AsRef<str>>(roles: impl IntoIterator<Item = R>) -> RoleSet {
    roles.into_iter().collect()
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, headers: &http::HeaderMap) -> Self {
        let presented = crate::extract::presented(headers, &shared.config);
        Self {
            inner: Arc::new(Inner {
                presented,
                user_agent: headers.get(USER_AGENT).cloned(),
                shared,
                load_lock: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    loaded: Loaded::NotYet,
                    view: None,
                    changes: DataChanges::default(),
                    auth: None,
                    logout: false,
                    lifetime: None,
                    new_token: None,
                    token_taken: false,
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written in a way that
        // matters more than the panic itself; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn config(&self) -> &SessionConfig {
        &self.inner.shared.config
    }

    fn store(&self) -> &dyn SessionStore {
        &*self.inner.shared.store
    }

    fn now(&self) -> Timestamp {
        self.config().clock.now()
    }

    /// Loads the record once (one store round trip), or decides without the store that there
    /// is none.
    async fn ensure_loaded(&self) -> Result<(), SessionError> {
        if !matches!(self.state().loaded, Loaded::NotYet) {
            return Ok(());
        }
        let _guard = self.inner.load_lock.lock().await;
        if !matches!(self.state().loaded, Loaded::NotYet) {
            return Ok(());
        }
        let loaded = match &self.inner.presented {
            Presented::Nothing => Loaded::Absent,
            Presented::Malformed { via } => {
                tracing::info!(target: "sessionward", event = "session.malformed", via = ?via, "malformed session ID presented");
                Loaded::Absent
            }
            Presented::Ambiguous { via, .. } => {
                tracing::warn!(target: "sessionward", event = "session.ambiguous", via = ?via, "several different session IDs presented; ignoring all (cookie tossing?)");
                Loaded::Absent
            }
            Presented::Token { token, .. } => {
                let key = token.key();
                match self.store().load(&key, self.now()).await {
                    Ok(Some(record)) => self.check_user_agent(record),
                    Ok(None) => {
                        tracing::info!(target: "sessionward", event = "session.unknown", key = %key.short(), "unknown or expired session ID presented");
                        Loaded::Absent
                    }
                    Err(e) => {
                        tracing::error!(target: "sessionward", event = "session.store_error", key = %key.short(), error = %e, "session store failed to load");
                        return Err(SessionError::Store(e));
                    }
                }
            }
        };
        self.state().loaded = loaded;
        Ok(())
    }

    /// The request's user agent, as a record keeps it.
    fn user_agent(&self) -> Option<String> {
        self.inner
            .user_agent
            .as_ref()
            .and_then(user_agent_str)
            .map(str::to_owned)
    }

    /// Compares the request's user agent with the one the session was created with (SEC-35).
    fn check_user_agent(&self, record: SessionRecord) -> Loaded {
        let presented = self.inner.user_agent.as_ref().and_then(user_agent_str);
        let Some(stored) = &record.user_agent else {
            return Loaded::Live(record);
        };
        if presented == Some(stored.as_str()) {
            return Loaded::Live(record);
        }
        let bound = self.config().bind_user_agent;
        tracing::warn!(target: "sessionward", event = "session.anomaly", key = %record.key.short(), bound, "session presented with a different user agent");
        if bound {
            Loaded::Absent
        } else {
            Loaded::Live(record)
        }
    }

    fn draw_token(state: &mut State) -> Result<(), SessionError> {
        if state.new_token.is_none() {
            state.new_token = Some((SessionToken::generate()?, SessionHandle::generate()?));
        }
        Ok(())
    }

    /// Whether a live session stands behind this request (after this request's changes).
    fn live_user(state: &State) -> Option<&UserId> {
        match &state.auth {
            Some(AuthChange::Login { user, .. }) => Some(user),
            _ if state.logout => None,
            _ => match &state.loaded {
                Loaded::Live(r) => r.user.as_ref(),
                _ => None,
            },
        }
    }

    fn view(state: &mut State) -> Result<&mut Map<String, Value>, SessionError> {
        if state.view.is_none() {
            let mut map = match &state.loaded {
                Loaded::Live(r) if !state.logout => r.data.to_map()?,
                _ => Map::new(),
            };
            // Writes made before the first read (blind writes) are part of what this request
            // sees.
            let c = &state.changes;
            if c.clear {
                map.clear();
            }
            for k in &c.remove {
                map.remove(k);
            }
            for (k, v) in &c.set {
                map.insert(k.clone(), v.clone());
            }
            state.view = Some(map);
        }
        Ok(state.view.get_or_insert_with(Map::new))
    }

    /// The signed-in user, or `None` for an anonymous session or none.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed (fail closed: never "anonymous").
    pub async fn user(&self) -> Result<Option<UserId>, SessionError> {
        self.ensure_loaded().await?;
        Ok(Self::live_user(&self.state()).cloned())
    }

    /// The roles: the authorization level, as the server holds it.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn roles(&self) -> Result<RoleSet, SessionError> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(match &state.auth {
            Some(AuthChange::Login { roles, .. } | AuthChange::Roles(roles)) => roles.clone(),
            None if state.logout => RoleSet::empty(),
            None => match &state.loaded {
                Loaded::Live(r) => r.roles.clone(),
                _ => RoleSet::empty(),
            },
        })
    }

    /// When the user last proved their credentials (now, if they sign in in this request).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn authenticated_at(&self) -> Result<Option<Timestamp>, SessionError> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(match &state.auth {
            Some(AuthChange::Login { .. }) => Some(self.now()),
            _ if state.logout => None,
            _ => match &state.loaded {
                Loaded::Live(r) => r.authenticated_at,
                _ => None,
            },
        })
    }

    /// The public handle of the current session (`None` if there is none yet). Not a secret.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn handle(&self) -> Result<Option<SessionHandle>, SessionError> {
        self.ensure_loaded().await?;
        let state = self.state();
        Ok(match &state.loaded {
            Loaded::Live(r) if !state.logout => Some(r.handle),
            _ => None,
        })
    }

    /// Reads a value.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Serde`] if the stored
    /// value does not deserialize as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.get_value(key).await? {
            Some(v) => Ok(Some(serde_json::from_value(v)?)),
            None => Ok(None),
        }
    }

    /// Reads a value as JSON.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        Ok(Self::view(&mut state)?.get(key).cloned())
    }

    /// Every key and value.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn entries(&self) -> Result<Map<String, Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        Ok(Self::view(&mut state)?.clone())
    }

    /// Sets a value. Without a session, this creates one (anonymous) when the response goes
    /// out, under a fresh server-generated ID: a presented unknown ID is never adopted.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed, [`SessionError::Serde`] if `value` does not
    /// serialize, [`SessionError::Data`] if the data would exceed the configured limit.
    pub async fn insert<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        let limit = self.config().max_data_bytes;
        {
            // A write to a presented session that nothing in this request has read is applied
            // blind: no load now, and one store round trip (a merging save) when the response
            // goes out. The store enforces the size cap on the merged record; if the ID turns
            // out to be dead, the write goes to a new session under a fresh ID.
            let mut state = self.state();
            if matches!(state.loaded, Loaded::NotYet) && self.inner.presented.token().is_some() {
                let size = key.len() + value.to_string().len() + 6;
                if size > limit {
                    return Err(SessionError::Data(DataError::TooLarge { size, limit }));
                }
                state.changes.insert(key, value);
                return Ok(());
            }
        }
        self.ensure_loaded().await?;
        let mut state = self.state();
        let view = Self::view(&mut state)?;
        let old = view.insert(key.to_owned(), value.clone());
        let size = serde_json::to_vec(&*view).map_or(usize::MAX, |v| v.len());
        if size > limit {
            match old {
                Some(old) => view.insert(key.to_owned(), old),
                None => view.remove(key),
            };
            return Err(SessionError::Data(DataError::TooLarge { size, limit }));
        }
        state.changes.insert(key, value);
        if !Self::has_live_record(&state) {
            Self::draw_token(&mut state)?;
        }
        Ok(())
    }

    fn has_live_record(state: &State) -> bool {
        !state.logout && matches!(state.loaded, Loaded::Live(_))
    }

    /// Removes a value; returns the old one.
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn remove(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        let old = Self::view(&mut state)?.remove(key);
        if old.is_some() {
            state.changes.remove(key);
        }
        Ok(old)
    }

    /// Removes every value (the session and its sign-in stay).
    ///
    /// # Errors
    /// [`SessionError::Store`] if the store failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        Self::view(&mut state)?.clear();
        state.changes.clear();
        Ok(())
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
        let fresh = (SessionToken::generate()?, SessionHandle::generate()?);
        let mut state = self.state();
        // Data of another user's session does not carry over to this one.
        let other_user = match &state.loaded {
            Loaded::Live(r) => r.user.as_ref().is_some_and(|u| *u != user),
            _ => false,
        };
        if other_user {
            state.logout = true;
            state.view = None;
            state.changes = DataChanges::default();
        }
        state.auth = Some(AuthChange::Login {
            user,
            roles: roles_of(roles),
        });
        state.new_token = Some(fresh);
        state.token_taken = false;
        Ok(())
    }

    /// Changes the roles of the signed-in user's current session, and rotates its ID, as after
    /// any privilege change (SEC-19). To change the roles of every session of a user, use
    /// [`Sessions::set_roles`].
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
        match &mut state.auth {
            Some(AuthChange::Login { roles: r, .. } | AuthChange::Roles(r)) => *r = roles,
            None => {
                if Self::live_user(&state).is_none() {
                    return Err(SessionError::NotSignedIn);
                }
                Self::draw_token(&mut state)?;
                state.auth = Some(AuthChange::Roles(roles));
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
        self.state().lifetime = Some(Lifetime { absolute, idle });
        Ok(())
    }

    /// Ends the session: the record is deleted before the response goes out, and the cookie
    /// is cleared with the attributes that set it (SEC-26).
    pub fn logout(&self) {
        let mut state = self.state();
        state.logout = true;
        state.auth = None;
        state.view = None;
        state.changes = DataChanges::default();
        state.new_token = None;
        state.lifetime = None;
    }

    /// Ends every other session of the signed-in user, now (for example after a password
    /// change, SEC-27). Returns how many ended.
    ///
    /// # Errors
    /// [`SessionError::NotSignedIn`] without a signed-in user; [`SessionError::Store`].
    pub async fn logout_other_sessions(&self) -> Result<u64, SessionError> {
        let user = self.user().await?.ok_or(SessionError::NotSignedIn)?;
        let current = self.current_key();
        Ok(self.store().delete_by_user(&user, current.as_ref()).await?)
    }

    fn current_key(&self) -> Option<SessionKey> {
        let state = self.state();
        match &state.loaded {
            Loaded::Live(r) if !state.logout => Some(r.key),
            _ => None,
        }
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
        if state.token_taken {
            return None;
        }
        let token = state.new_token.as_ref()?.0.expose();
        state.token_taken = true;
        Some(token)
    }

    /// The application-wide handle for admin actions (list or revoke any user's sessions,
    /// change a user's roles).
    #[must_use]
    pub fn sessions(&self) -> Sessions {
        Sessions::new(self.inner.shared.clone())
    }

    /// Completes the request: decides what to write, and writes it (SEC-17: a store failure
    /// replaces the response with a 503).
    pub(crate) fn finish<B>(self, mut res: Response<B>) -> Finish<B>
    where
        B: From<&'static str> + Send + 'static,
    {
        let plan = {
            let mut state = self.state();
            if matches!(state.loaded, Loaded::NotYet)
                && state.auth.is_none()
                && !state.logout
                && state.changes.is_empty()
            {
                // The handler never used the session (lazy: no store call at all).
                return Finish::Done(res);
            }
            // A failed handler persists nothing, except a logout it asked for: ending a
            // session is always safe, and keeping it alive after "sign out" is not.
            let logout_only = state.logout && state.auth.is_none();
            if res.status().is_server_error() && !logout_only {
                return Finish::Done(res);
            }
            self.plan(&mut state)
        };
        match plan {
            Plan::Nothing { clear_cookie } => {
                self.apply_headers(
                    &mut res,
                    Outcome {
                        clear_cookie,
                        ..Outcome::default()
                    },
                );
                Finish::Done(res)
            }
            plan => Finish::Pending(Box::pin(async move {
                match self.execute(plan).await {
                    Ok(outcome) => {
                        self.apply_headers(&mut res, outcome);
                        res
                    }
                    Err(e) => {
                        tracing::error!(target: "sessionward", event = "session.store_error", error = %e, "session store failed while completing the request");
                        e.response()
                    }
                }
            })),
        }
    }

    /// Whether a token this request issues goes out in a cookie: not when the handler took it
    /// for a bearer client, not without the cookie transport, and not to a client that
    /// presented its session as a bearer token.
    fn deliver_cookie(&self, state: &State) -> bool {
        !state.token_taken && self.config().transport.cookie() && !self.inner.presented.via_bearer()
    }

    fn plan(&self, state: &mut State) -> Plan {
        let now = self.now();
        let config = self.config();
        let live = match &state.loaded {
            Loaded::Live(r) => Some(r),
            _ => None,
        };
        // A dead cookie (unknown, expired, malformed, ambiguous) the session was consulted for
        // is cleared: the client drops an ID the server no longer knows.
        let dead_cookie = live.is_none()
            && self.inner.presented.via_cookie()
            && !matches!(state.loaded, Loaded::NotYet);
        let lifetime = state.lifetime;
        let deliver_cookie = self.deliver_cookie(state);

        if matches!(state.loaded, Loaded::NotYet)
            && !state.logout
            && state.auth.is_none()
            && let Some(token) = self.inner.presented.token()
        {
            // Only blind writes get here (anything else loads first, and logout needs no
            // read).
            let data = std::mem::take(&mut state.changes);
            if data.is_empty() {
                return Plan::Nothing {
                    clear_cookie: false,
                };
            }
            return Plan::BlindSave {
                key: token.key(),
                changes: Box::new(ChangeSet {
                    data,
                    last_seen_at: Some(now),
                    data_limit: Some(config.max_data_bytes),
                    ..ChangeSet::default()
                }),
                deliver_cookie,
            };
        }

        if let Some(auth) = state.auth.take() {
            let Some((token, handle)) = state.new_token.take() else {
                return Plan::Nothing {
                    clear_cookie: dead_cookie,
                };
            };
            let carry = live.filter(|_| !state.logout);
            let data = carry.map_or_else(SessionData::empty, |r| r.data.clone());
            let mut record = SessionRecord::new(
                token.key(),
                handle,
                now,
                config.idle_timeout,
                config.absolute_timeout,
            );
            record.data = data;
            record.user_agent = self.user_agent();
            let kind = match auth {
                AuthChange::Login { user, roles } => {
                    record.user = Some(user);
                    record.roles = roles;
                    record.authenticated_at = Some(now);
                    if let Some(old) = carry {
                        record.created_at = old.created_at;
                    }
                    if let Some(lt) = lifetime {
                        // A sign-in may set any lifetime: the user just proved who they are.
                        record.absolute_expires_at = now + lt.absolute;
                        if let Some(idle) = lt.idle {
                            record.idle_timeout = idle;
                        }
                    }
                    RotateKind::Login
                }
                AuthChange::Roles(roles) => {
                    let Some(old) = carry else {
                        return Plan::Nothing {
                            clear_cookie: dead_cookie,
                        };
                    };
                    record.user = old.user.clone();
                    record.roles = roles;
                    // The same session, with a new ID: it keeps its public handle.
                    record.handle = old.handle;
                    record.authenticated_at = old.authenticated_at;
                    record.created_at = old.created_at;
                    record.idle_timeout = old.idle_timeout;
                    record.user_agent = old.user_agent.clone().or(record.user_agent);
                    // Rotation never extends the absolute expiry (SEC-22).
                    record.absolute_expires_at = old.absolute_expires_at;
                    if let Some(lt) = lifetime {
                        let (absolute, idle) = Self::shortened(old, lt);
                        record.absolute_expires_at = absolute;
                        record.idle_timeout = idle;
                    }
                    RotateKind::Privilege
                }
            };
            return Plan::Rotate {
                old: live.map(|r| (r.key, r.version)),
                delete_old: state.logout,
                record: Box::new(record),
                changes: std::mem::take(&mut state.changes),
                token,
                kind,
                deliver_cookie,
            };
        }

        if state.logout {
            return Plan::Logout {
                keys: self.inner.presented.candidate_keys(),
                clear_cookie: self.inner.presented.via_cookie(),
            };
        }

        if let Some(old) = live {
            let mut changes = ChangeSet {
                data: std::mem::take(&mut state.changes),
                data_limit: Some(config.max_data_bytes),
                ..ChangeSet::default()
            };
            if let Some(lt) = lifetime {
                let (absolute, idle) = Self::shortened(old, lt);
                changes.absolute_expires_at = Some(absolute);
                changes.idle_timeout = Some(idle);
            }
            let touch_due = now.saturating_since(old.last_seen_at) >= config.touch_interval;
            if !changes.data.is_empty() || changes.is_structural() {
                // Activity is recorded at most once per touch interval, writes included:
                // a save that leaves the expiry alone is cheaper for every store (PostgreSQL
                // can update the row in place, without touching its indexes).
                if touch_due {
                    changes.last_seen_at = Some(now);
                }
                // Re-issue a persistent cookie whose lifetime changed; never turn a bearer
                // token into a cookie.
                let reissue = lifetime.is_some()
                    && config.persistent
                    && config.transport.cookie()
                    && self.inner.presented.via_cookie();
                return Plan::Save {
                    key: old.key,
                    version: old.version,
                    changes: Box::new(changes),
                    reissue_token: reissue
                        .then(|| self.inner.presented.token().cloned())
                        .flatten(),
                };
            }
            if touch_due {
                return Plan::Touch { key: old.key };
            }
            return Plan::Nothing {
                clear_cookie: false,
            };
        }

        if !state.changes.is_empty() {
            // A write without a live session: a new anonymous session under a fresh ID.
            let Some((token, handle)) = state.new_token.take() else {
                return Plan::Nothing {
                    clear_cookie: dead_cookie,
                };
            };
            let mut record = self.anonymous_record(&token, handle, now);
            if let Some(lt) = lifetime {
                record.absolute_expires_at = now + lt.absolute;
                if let Some(idle) = lt.idle {
                    record.idle_timeout = idle;
                }
            }
            return Plan::Create {
                record: Box::new(record),
                changes: std::mem::take(&mut state.changes),
                token,
                deliver_cookie,
            };
        }

        Plan::Nothing {
            clear_cookie: dead_cookie,
        }
    }

    /// The lifetime `lt` asks for on an existing session, counted from sign-in (creation for
    /// an anonymous session). A signed-in session's lifetime only ever shortens without a
    /// sign-in (SEC-22).
    fn shortened(old: &SessionRecord, lt: Lifetime) -> (Timestamp, Duration) {
        let base = old.authenticated_at.unwrap_or(old.created_at);
        let mut absolute = base + lt.absolute;
        let mut idle = lt.idle.unwrap_or(old.idle_timeout);
        if old.user.is_some() {
            absolute = absolute.min(old.absolute_expires_at);
            idle = idle.min(old.idle_timeout);
        }
        (absolute, idle)
    }

    /// Attempts at a save or a sign-in rotation that races other writes, before giving up
    /// with 409.
    const ATTEMPTS: usize = 3;

    async fn execute(&self, plan: Plan) -> Result<Outcome, SessionError> {
        let store = self.store();
        let now = self.now();
        let limit = Some(self.config().max_data_bytes);
        let via_cookie = self.inner.presented.via_cookie();
        match plan {
            Plan::Nothing { clear_cookie } => Ok(Outcome {
                clear_cookie,
                ..Outcome::default()
            }),
            Plan::Touch { key } => {
                store.touch(&key, now).await?;
                Ok(Outcome::default())
            }
            Plan::BlindSave {
                key,
                changes,
                deliver_cookie,
            } => {
                // Data-only: merged whatever the version. A store may still answer Conflict
                // when the record changed between its check and its answer: try again.
                let mut gone = false;
                for _ in 0..Self::ATTEMPTS {
                    match store.save(&key, None, &changes, now).await? {
                        SaveOutcome::Saved { .. } => {
                            return Ok(Outcome {
                                wrote: true,
                                ..Outcome::default()
                            });
                        }
                        SaveOutcome::Gone => {
                            gone = true;
                            break;
                        }
                        SaveOutcome::Conflict { .. } => {}
                    }
                }
                if !gone {
                    return Err(SessionError::Conflict);
                }
                // The presented ID is dead (unknown, expired, ended): never adopted. The write
                // goes to a new anonymous session under a fresh ID.
                tracing::info!(target: "sessionward", event = "session.unknown", key = %key.short(), "unknown or expired session ID presented");
                let token = SessionToken::generate()?;
                let record = self.anonymous_record(&token, SessionHandle::generate()?, now);
                self.create(record, &changes.data, token, deliver_cookie)
                    .await
            }
            Plan::Save {
                key,
                version,
                changes,
                reissue_token,
            } => {
                let mut expected = version;
                for _ in 0..Self::ATTEMPTS {
                    match store.save(&key, Some(expected), &changes, now).await? {
                        SaveOutcome::Saved { .. } => {
                            return Ok(Outcome {
                                issued: reissue_token
                                    .map(|t| (t, self.absolute_after(&changes, now), true)),
                                wrote: true,
                                ..Outcome::default()
                            });
                        }
                        SaveOutcome::Gone => {
                            // Ended (logout elsewhere, revoked, expired) while this request
                            // ran: its writes are dropped, never resurrected.
                            tracing::info!(target: "sessionward", event = "session.gone", key = %key.short(), "session ended while the request ran; its changes were dropped");
                            return Ok(Outcome {
                                clear_cookie: via_cookie,
                                ..Outcome::default()
                            });
                        }
                        // Another request changed the record since we read it; this
                        // request's lifetime change is the newer intent: apply it on top.
                        SaveOutcome::Conflict { current_version } => expected = current_version,
                    }
                }
                Err(SessionError::Conflict)
            }
            Plan::Create {
                record,
                changes,
                token,
                deliver_cookie,
            } => self.create(*record, &changes, token, deliver_cookie).await,
            Plan::Rotate {
                old,
                delete_old,
                mut record,
                changes,
                token,
                kind,
                deliver_cookie,
            } => {
                let base = record.data.clone();
                record.data = base.apply(&changes, limit)?;
                let mut rotated = false;
                match old {
                    Some((old_key, version)) if !delete_old => {
                        let mut expected = version;
                        for attempt in 1..=Self::ATTEMPTS {
                            match store.rotate(&old_key, Some(expected), &record, now).await? {
                                RotateOutcome::Rotated => {
                                    rotated = true;
                                    break;
                                }
                                RotateOutcome::Gone => break,
                                // Roles computed from a stale read must not undo a concurrent
                                // change (a demotion): refuse, the client may retry.
                                RotateOutcome::Conflict { .. }
                                    if kind == RotateKind::Privilege
                                        || attempt == Self::ATTEMPTS =>
                                {
                                    return Err(SessionError::Conflict);
                                }
                                // A sign-in is authoritative for user and roles; rebuild its
                                // data from the current record so concurrent saves survive.
                                RotateOutcome::Conflict { .. } => {
                                    match store.load(&old_key, now).await? {
                                        Some(current) => {
                                            expected = current.version;
                                            record.data = current.data.apply(&changes, limit)?;
                                        }
                                        None => break,
                                    }
                                }
                            }
                        }
                    }
                    Some((old_key, _)) => {
                        store.delete(&old_key).await?;
                    }
                    None => {}
                }
                if !rotated {
                    if kind == RotateKind::Privilege {
                        // The session ended while the request ran; a privilege change does not
                        // bring it back.
                        return Ok(Outcome {
                            clear_cookie: via_cookie,
                            ..Outcome::default()
                        });
                    }
                    store.create(&record).await?;
                }
                tracing::info!(
                    target: "sessionward",
                    event = if rotated { "session.rotated" } else { "session.created" },
                    key = %record.key.short(),
                    reason = if kind == RotateKind::Login { "login" } else { "privilege change" },
                    "session ID issued"
                );
                Ok(Outcome {
                    issued: Some((token, record.absolute_expires_at, deliver_cookie)),
                    ..Outcome::default()
                })
            }
            Plan::Logout { keys, clear_cookie } => {
                for key in &keys {
                    store.delete(key).await?;
                    tracing::info!(target: "sessionward", event = "session.destroyed", key = %key.short(), "session destroyed by logout");
                }
                Ok(Outcome {
                    clear_cookie: clear_cookie || self.config().transport.cookie(),
                    logged_out: true,
                    ..Outcome::default()
                })
            }
        }
    }

    /// A new anonymous record for `token`, with the configured timeouts and this request's
    /// user agent.
    fn anonymous_record(
        &self,
        token: &SessionToken,
        handle: SessionHandle,
        now: Timestamp,
    ) -> SessionRecord {
        let config = self.config();
        let mut record = SessionRecord::new(
            token.key(),
            handle,
            now,
            config.idle_timeout,
            config.absolute_timeout,
        );
        record.user_agent = self.user_agent();
        record
    }

    /// Stores a new session holding `changes`, and says to issue its token.
    async fn create(
        &self,
        mut record: SessionRecord,
        changes: &DataChanges,
        token: SessionToken,
        deliver_cookie: bool,
    ) -> Result<Outcome, SessionError> {
        record.data = record
            .data
            .apply(changes, Some(self.config().max_data_bytes))?;
        self.store().create(&record).await?;
        tracing::info!(target: "sessionward", event = "session.created", key = %record.key.short(), "session created");
        Ok(Outcome {
            issued: Some((token, record.absolute_expires_at, deliver_cookie)),
            ..Outcome::default()
        })
    }

    fn absolute_after(&self, changes: &ChangeSet, now: Timestamp) -> Timestamp {
        changes
            .absolute_expires_at
            .unwrap_or(now + self.config().absolute_timeout)
    }

    fn apply_headers<B>(&self, res: &mut Response<B>, outcome: Outcome) {
        let config = self.config();
        let headers = res.headers_mut();
        // A response that issues a token (in a cookie or in its body) is never cached.
        let mut touched_cookie = outcome.issued.is_some();
        if let Some((token, absolute, true)) = outcome.issued {
            let mut cookie = format!(
                "{}={}{}",
                config.cookie_name,
                token.expose(),
                config.cookie_attributes()
            );
            if config.persistent {
                let secs = absolute.saturating_since(self.now()).as_secs();
                cookie.push_str(&format!("; Max-Age={secs}"));
            }
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, v);
            }
        } else if outcome.clear_cookie && config.transport.cookie() {
            let cookie = format!(
                "{}=; Max-Age=0{}",
                config.cookie_name,
                config.cookie_attributes()
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, v);
                touched_cookie = true;
            }
        }
        if outcome.logged_out && config.clear_site_data {
            headers.insert(
                http::HeaderName::from_static("clear-site-data"),
                HeaderValue::from_static("\"cookies\", \"storage\""),
            );
        }
        let signed_in = {
            let state = self.state();
            Self::live_user(&state).is_some()
                || matches!(&state.loaded, Loaded::Live(r) if r.user.is_some())
        };
        if touched_cookie || outcome.wrote || (signed_in && config.no_store_when_signed_in) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RotateKind {
    Login,
    Privilege,
}

enum Plan {
    Nothing {
        clear_cookie: bool,
    },
    Touch {
        key: SessionKey,
    },
    /// Writes made without reading: one merging save of the presented ID.
    BlindSave {
        key: SessionKey,
        changes: Box<ChangeSet>,
        deliver_cookie: bool,
    },
    Save {
        key: SessionKey,
        version: u64,
        changes: Box<ChangeSet>,
        reissue_token: Option<SessionToken>,
    },
    Create {
        record: Box<SessionRecord>,
        changes: DataChanges,
        token: SessionToken,
        deliver_cookie: bool,
    },
    Rotate {
        /// The key and version of the record read at load time.
        old: Option<(SessionKey, u64)>,
        delete_old: bool,
        record: Box<SessionRecord>,
        changes: DataChanges,
        token: SessionToken,
        kind: RotateKind,
        deliver_cookie: bool,
    },
    Logout {
        /// Every well-formed ID the request presented (more than one when it was ambiguous).
        keys: Vec<SessionKey>,
        clear_cookie: bool,
    },
}

/// What the response must say about the session.
#[derive(Default)]
struct Outcome {
    /// A token was issued (a new session, or a rotation), with its absolute expiry, and
    /// whether the cookie carries it (not when the handler took it for a bearer client).
    issued: Option<(SessionToken, Timestamp, bool)>,
    clear_cookie: bool,
    /// The session was ended by `logout()`.
    logged_out: bool,
    /// The session's data was written.
    wrote: bool,
}

/// What [`Session::finish`] leaves to do.
pub(crate) enum Finish<B> {
    Done(Response<B>),
    Pending(Pin<Box<dyn Future<Output = Response<B>> + Send>>),
}

impl Session {
    /// Whether the request presented its session in the cookie.
    pub(crate) fn presented_via_cookie(&self) -> bool {
        self.inner.presented.via_cookie()
    }

    /// The clock's time, for checks outside this module.
    pub(crate) fn now_for_checks(&self) -> Timestamp {
        self.now()
    }
}

impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Session {
    type Rejection = crate::rejection::MissingSessionLayer;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(crate::rejection::MissingSessionLayer)
    }
}
