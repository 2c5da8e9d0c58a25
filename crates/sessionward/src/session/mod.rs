//! [`Session`]: the per-request session handle, and what the layer does with it when the
//! response comes back.
//!
//! One request's walk through this module: `load.rs` reads the record on first use; the
//! handler API (`data.rs`, `account.rs`) records what the handler asks for in the request's
//! state (`state.rs`); when the response comes back, [`Session::finish`] asks `plan.rs` what
//! to write, `commit.rs` writes it, and `response.rs` sets the headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, Response};
use sessionward_core::{SessionStore, Timestamp};

use crate::client::ClientAddr;
use crate::config::SessionConfig;
use crate::events;
use crate::presented::Presented;
use crate::shared::Shared;

mod account;
mod commit;
mod data;
mod load;
mod plan;
mod response;
mod state;

use self::state::{Intent, Loaded, State};

/// Longest user agent kept in a record, in bytes.
const MAX_USER_AGENT: usize = 256;

struct Inner {
    shared: Arc<Shared>,
    presented: Presented,
    user_agent: Option<HeaderValue>,
    /// The clock's time when the request arrived: a sign-in's authorization is dated from it.
    started: Timestamp,
    client: Option<ClientAddr>,
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

/// What [`Session::finish`] leaves to do.
pub(crate) enum Finish<B> {
    Done(Response<B>),
    Pending(Pin<Box<dyn Future<Output = Response<B>> + Send>>),
}

impl Session {
    /// The session of a request that presented `presented`, with this user agent, from this
    /// client.
    pub(crate) fn new(
        shared: Arc<Shared>,
        presented: Presented,
        user_agent: Option<HeaderValue>,
        client: Option<ClientAddr>,
    ) -> Self {
        let started = shared.config.clock.now();
        Self {
            inner: Arc::new(Inner {
                presented,
                user_agent,
                started,
                client,
                shared,
                load_lock: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
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

    fn store(&self) -> &(dyn SessionStore + 'static) {
        &*self.inner.shared.store
    }

    /// The clock's time.
    pub(crate) fn now(&self) -> Timestamp {
        self.config().clock.now()
    }

    /// When a sign-in or privilege change of this request decided its authorization: the
    /// request's start less the configured clock margin (SEC-16), or this request's own
    /// per-user change if that is later.
    fn authorized_at(&self, floor: Option<Timestamp>) -> Timestamp {
        let dated = self.inner.started - self.config().authorization_clock_margin;
        floor.map_or(dated, |f| dated.max(f))
    }

    /// What this session shares with the layer (for the admin handle).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The address of the client the request came from: the connection's peer, or what a
    /// trusted proxy forwarded
    /// ([`SessionConfigBuilder::trusted_proxies`](crate::SessionConfigBuilder::trusted_proxies)).
    /// `None` when the server gave the layer no peer address (serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`). The same value as the
    /// [`ClientAddr`] extractor.
    #[must_use]
    pub fn client_addr(&self) -> Option<ClientAddr> {
        self.inner.client
    }

    /// What this request's events need.
    pub(crate) fn events(&self) -> events::Cx<'_> {
        events::Cx {
            limits: &self.config().events,
            client: self.inner.client,
        }
    }

    /// The request's user agent, as a record keeps it.
    fn user_agent(&self) -> Option<&str> {
        self.inner.user_agent.as_ref().and_then(user_agent_str)
    }

    /// Completes the request: decides what to write, and writes it (SEC-17: a store failure
    /// replaces the response with a 503).
    pub(crate) fn finish<B>(self, mut res: Response<B>) -> Finish<B>
    where
        B: Default + Send + 'static,
    {
        let now = self.now();
        // Read once: the plan and the commit both need it.
        let user_agent = self.user_agent();
        let plan = {
            let mut state = self.state();
            if matches!(state.loaded, Loaded::NotYet) && state.pending.is_empty() {
                // The handler never used the session (lazy: no store call at all).
                return Finish::Done(res);
            }
            // A failed handler persists nothing, except a logout it asked for: ending a
            // session is always safe, and keeping it alive after "sign out" is not.
            let sign_out = matches!(state.pending.intent, Intent::SignOut);
            if res.status().is_server_error() && !sign_out {
                return Finish::Done(res);
            }
            let pending = std::mem::take(&mut state.pending);
            let request = plan::Request {
                presented: &self.inner.presented,
                user_agent,
                authorized_at: self.authorized_at(state.authorized_floor),
            };
            plan::plan(&state.loaded, pending, now, self.config(), &request)
        };
        // A logout clears the cookie even when the store fails to end the record (below).
        let logout = match &plan.action {
            plan::Action::Logout { clear_cookie, .. } => Some(*clear_cookie),
            _ => None,
        };
        if let plan::Action::Nothing { clear_cookie } = plan.action {
            let outcome = commit::Outcome {
                clear_cookie,
                signed_in: plan.signed_in,
                ..commit::Outcome::default()
            };
            // No store call since `now` was read: the same instant.
            response::apply(&mut res, outcome, self.config(), || now);
            return Finish::Done(res);
        }
        if let Some(now_face) = self.store().immediate() {
            // The store answers without waiting: the commit completes on its first poll, here,
            // with no boxed future.
            let commit = std::pin::pin!(self.complete(
                res,
                plan,
                logout,
                now,
                commit::Now(now_face),
                user_agent
            ));
            let mut cx = Context::from_waker(Waker::noop());
            return match commit.poll(&mut cx) {
                Poll::Ready(res) => Finish::Done(res),
                // An immediate face that waited broke its contract: fail closed.
                Poll::Pending => {
                    let e = crate::SessionError::from(sessionward_core::StoreError::backend(
                        "the store's immediate face did not complete",
                    ));
                    events::commit_failed(self.events(), &e);
                    Finish::Done(e.response())
                }
            };
        }
        Finish::Pending(Box::pin(async move {
            let store = commit::Async(self.store());
            self.complete(res, plan, logout, now, store, self.user_agent())
                .await
        }))
    }

    /// Runs `plan` through `backend` and answers with `res`'s headers set, or the error's
    /// response. `user_agent` is [`Session::user_agent`], read once by the caller.
    async fn complete<B, R: Default + Send + 'static>(
        &self,
        mut res: Response<R>,
        plan: plan::Plan,
        logout: Option<bool>,
        now: Timestamp,
        backend: B,
        user_agent: Option<&str>,
    ) -> Response<R>
    where
        B: commit::Backend,
    {
        let store = commit::Store {
            store: backend,
            config: self.config(),
            now,
            user_agent,
            events: self.events(),
        };
        match commit::commit(&store, plan).await {
            Ok(outcome) => {
                if let (Some(t), Some(issued)) = (&self.config().guess_throttle, &outcome.issued) {
                    t.valid(&issued.token.key());
                }
                response::apply(&mut res, outcome, self.config(), || self.now());
                res
            }
            Err(e) => match logout {
                // SEC-26: the sign-out still takes the cookie away (and Clear-Site-Data if
                // configured); the 503 says the server-side end failed.
                Some(clear_cookie) => {
                    events::logout_failed(self.events(), &e);
                    let mut res = e.response();
                    let outcome = commit::Outcome {
                        clear_cookie,
                        logged_out: true,
                        ..commit::Outcome::default()
                    };
                    response::apply(&mut res, outcome, self.config(), || self.now());
                    res
                }
                None => {
                    // A refused stale sign-in has its own event (commit.rs).
                    if matches!(e, crate::SessionError::AuthorizationChanged) {
                        let mut res = e.response();
                        res.headers_mut().insert(
                            http::header::RETRY_AFTER,
                            retry_after_authorization_change(self.config()),
                        );
                        return res;
                    }
                    events::commit_failed(self.events(), &e);
                    e.response()
                }
            },
        }
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

/// When a sign-in refused for a concurrent authorization change can be made again: a request
/// that starts this many seconds after the refusal is dated (its start less the clock margin)
/// after the change, which happened before the refusal. The timestamps have whole seconds, so
/// one second more than the margin.
fn retry_after_authorization_change(config: &SessionConfig) -> HeaderValue {
    let margin = config.authorization_clock_margin;
    HeaderValue::from(margin.as_secs() + u64::from(margin.subsec_nanos() > 0) + 1)
}
