//! A test app over the layer, a store that counts and can fail, and request helpers.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use sessionward::{
    RequireAuth, RequireFreshAuth, RequireRole, Session, SessionConfig, SessionError,
    SessionHandle, SessionLayer, Sessions, TestClock, Timestamp, role,
};
use sessionward_conformance::{CallLog, ForwardingStore};
use sessionward_memory::MemoryStore;
use tower::ServiceExt as _;

role!(pub Admin = "admin");

/// A memory store behind the conformance kit's forwarding store, which counts calls per
/// operation and fails on demand; the layer gets [`TestStore::forwarding`].
#[derive(Debug, Clone)]
pub struct TestStore {
    pub inner: MemoryStore,
    forwarding: ForwardingStore<MemoryStore, CallLog>,
}

impl TestStore {
    pub fn new() -> Self {
        let inner = MemoryStore::builder()
            .sweep(sessionward_memory::SweepConfig::disabled())
            .build();
        Self {
            forwarding: ForwardingStore::new(inner.clone(), CallLog::default()),
            inner,
        }
    }

    /// The counting, failing store to hand to the layer.
    pub fn forwarding(&self) -> ForwardingStore<MemoryStore, CallLog> {
        self.forwarding.clone()
    }

    pub fn calls(&self) -> BTreeMap<&'static str, usize> {
        self.forwarding.hook().calls()
    }

    pub fn total_calls(&self) -> usize {
        self.forwarding.hook().total()
    }

    pub fn reset_calls(&self) {
        self.forwarding.hook().reset();
    }

    pub fn fail(&self, on: bool) {
        self.forwarding.hook().fail(on);
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
    #[serde(default)]
    roles: String,
}

fn split_roles(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
struct ItemQuery {
    item: String,
}

#[derive(Deserialize)]
struct RememberQuery {
    days: u64,
}

async fn login(session: Session, Query(q): Query<LoginQuery>) -> Result<StatusCode, SessionError> {
    session
        .login(q.user.as_str(), split_roles(&q.roles))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn token(session: Session, Query(q): Query<LoginQuery>) -> Result<String, SessionError> {
    session
        .login(q.user.as_str(), split_roles(&q.roles))
        .await?;
    Ok(session.issued_token().unwrap_or_default())
}

async fn me(auth: RequireAuth) -> String {
    format!("{} {}", auth.user, auth.roles.to_vec().join(","))
}

async fn admin(a: RequireRole<Admin>) -> String {
    format!("admin {}", a.user)
}

async fn fresh(a: RequireFreshAuth<60>) -> String {
    format!("fresh {}", a.user)
}

async fn logout(session: Session) -> StatusCode {
    session.logout();
    StatusCode::NO_CONTENT
}

async fn add_cart(session: Session, Query(q): Query<ItemQuery>) -> Result<String, SessionError> {
    let mut cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    cart.push(q.item);
    session.insert("cart", &cart).await?;
    Ok(cart.join(","))
}

async fn get_cart(session: Session) -> Result<String, SessionError> {
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(cart.join(","))
}

async fn put_pref(session: Session, Path(key): Path<String>) -> Result<StatusCode, SessionError> {
    session.insert(&format!("pref.{key}"), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LenQuery {
    len: usize,
}

/// Writes `pref.{key}` = `len` times "x" on a session the auth check loaded (nothing read
/// its data).
async fn loaded_pref(
    auth: RequireAuth,
    Path(key): Path<String>,
    Query(q): Query<LenQuery>,
) -> Result<StatusCode, SessionError> {
    auth.session
        .insert(&format!("pref.{key}"), &"x".repeat(q.len))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn write_then_read(session: Session) -> Result<String, SessionError> {
    session.insert("w", "written").await?;
    let w: Option<String> = session.get("w").await?;
    let cart: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(format!("{} {}", w.unwrap_or_default(), cart.join(",")))
}

async fn big(session: Session) -> Result<StatusCode, SessionError> {
    session.insert("big", &"x".repeat(70 * 1024)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn fail_after_write(session: Session) -> Result<StatusCode, SessionError> {
    session.insert("cart", &["should-not-persist"]).await?;
    Ok(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn login_and_elevate(session: Session) -> Result<StatusCode, SessionError> {
    session.login("alice", ["user"]).await?;
    session.set_roles(["user", "admin"]).await?;
    session.insert("note", "x").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads the roles, then (as if an administrator acted meanwhile) the user is demoted, then
/// the handler grants itself the roles it read plus one.
async fn elevate_racing_a_demotion(session: Session) -> Result<StatusCode, SessionError> {
    let mut roles = session.roles().await?.to_vec();
    let user = session.user().await?.ok_or(SessionError::NotSignedIn)?;
    session.sessions().set_roles(&user, ["user"]).await?;
    roles.push("sudo".into());
    session.set_roles(roles).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn switch_user(session: Session) -> Result<StatusCode, SessionError> {
    session.logout();
    session.login("bob", ["user"]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_then_fail(session: Session) -> StatusCode {
    session.logout();
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn login_remember(
    session: Session,
    Query(q): Query<RememberQuery>,
) -> Result<StatusCode, SessionError> {
    session.login("alice", ["user"]).await?;
    session
        .set_lifetime(Duration::from_secs(q.days * 86_400), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn elevate(session: Session) -> Result<StatusCode, SessionError> {
    let mut roles = session.roles().await?.to_vec();
    roles.push("admin".into());
    session.set_roles(roles).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remember(
    session: Session,
    Query(q): Query<RememberQuery>,
) -> Result<StatusCode, SessionError> {
    session
        .set_lifetime(Duration::from_secs(q.days * 86_400), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_sessions(session: Session) -> Result<String, SessionError> {
    let list = session.list_sessions().await?;
    Ok(list
        .iter()
        .map(|s| format!("{}{}", s.handle, if s.current { "*" } else { "" }))
        .collect::<Vec<_>>()
        .join(","))
}

async fn end_session(
    session: Session,
    Path(handle): Path<String>,
) -> Result<StatusCode, SessionError> {
    let Some(handle) = SessionHandle::parse(&handle) else {
        return Ok(StatusCode::NOT_FOUND);
    };
    Ok(if session.end_session(&handle).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn logout_others(session: Session) -> Result<String, SessionError> {
    Ok(session.logout_other_sessions().await?.to_string())
}

async fn set_user_roles(
    _: RequireRole<Admin>,
    sessions: Sessions,
    Query(q): Query<LoginQuery>,
) -> Result<String, SessionError> {
    Ok(sessions
        .set_roles(&q.user.as_str().into(), split_roles(&q.roles))
        .await?
        .to_string())
}

async fn handle_of(session: Session) -> Result<impl IntoResponse, SessionError> {
    Ok(session
        .handle()
        .await?
        .map(|h| h.to_string())
        .unwrap_or_default())
}

/// The routes every layer test uses.
pub fn routes() -> Router {
    Router::new()
        .route("/public", get(|| async { "public" }))
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/fresh", get(fresh))
        .route("/logout", post(logout))
        .route("/cart", post(add_cart).get(get_cart))
        .route("/prefs/{key}", axum::routing::put(put_pref))
        .route("/loaded-prefs/{key}", axum::routing::put(loaded_pref))
        .route("/big", post(big))
        .route("/write-then-read", post(write_then_read))
        .route("/fail-after-write", post(fail_after_write))
        .route("/elevate", post(elevate))
        .route("/login-and-elevate", post(login_and_elevate))
        .route("/elevate-racing", post(elevate_racing_a_demotion))
        .route("/switch-user", post(switch_user))
        .route("/logout-then-fail", post(logout_then_fail))
        .route("/login-remember", post(login_remember))
        .route("/remember", post(remember))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{handle}", delete(end_session))
        .route("/logout-others", post(logout_others))
        .route("/admin/roles", post(set_user_roles))
        .route("/handle", get(handle_of))
}

/// An app over a fresh test store, with a test clock.
pub struct TestApp {
    pub router: Router,
    pub store: TestStore,
    pub clock: TestClock,
    pub layer: SessionLayer,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    pub fn with(
        configure: impl FnOnce(sessionward::SessionConfigBuilder) -> sessionward::SessionConfigBuilder,
    ) -> Self {
        let clock = TestClock::new(Timestamp::from_unix(1_800_000_000));
        let config = configure(SessionConfig::builder().clock(Arc::new(clock.clone())))
            .build()
            .expect("valid test config");
        let store = TestStore::new();
        let layer = SessionLayer::with_config(store.forwarding(), config);
        Self {
            router: routes().layer(layer.clone()),
            store,
            clock,
            layer,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(req("GET", path, cookie)).await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(req("POST", path, cookie)).await
    }

    /// Signs in and returns the session cookie value.
    pub async fn login(&self, user: &str, roles: &str) -> String {
        let r = self
            .post(&format!("/login?user={user}&roles={roles}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        r.session_cookie().expect("login sets the cookie")
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

pub fn req(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-id={c}"));
    }
    b.body(Body::empty()).expect("request")
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    }

    /// The value the response sets for the session cookie (None if it sets none, or clears it).
    pub fn session_cookie(&self) -> Option<String> {
        let all = self.set_cookies();
        assert!(all.len() <= 1, "more than one Set-Cookie: {all:?}");
        let c = all.first()?;
        let value = c.strip_prefix("__Host-id=")?.split(';').next()?;
        (!value.is_empty()).then(|| value.to_owned())
    }

    pub fn clears_cookie(&self) -> bool {
        self.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-id=;") && c.contains("Max-Age=0"))
    }

    pub fn no_store(&self) -> bool {
        self.headers
            .get(header::CACHE_CONTROL)
            .is_some_and(|v| v == "no-store")
    }
}

/// The attributes of the default session cookie, after its value.
pub const ATTRS: &str = "; Path=/; Secure; HttpOnly; SameSite=Strict";

/// A token as the layer issues it: 43 base64url characters.
pub fn assert_token_shape(v: &str) {
    assert_eq!(v.len(), 43, "{v}");
    assert!(
        v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{v}"
    );
}

/// Sends `req` through `router` (an app with a layer of its own) and collects the reply.
pub async fn send_to(router: &Router, req: Request<Body>) -> Reply {
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
