//! Server-side sessions for [tower](https://docs.rs/tower) and [axum](https://docs.rs/axum),
//! secure by default.
//!
//! - [`SessionLayer`]: the middleware. It reads the session ID from the `__Host-id` cookie
//!   (or, opt-in, `Authorization: Bearer`), loads the record lazily (a route that never uses
//!   the session costs no store call; a read costs one round trip), and writes what the
//!   handler changed when the response comes back.
//! - [`Session`]: the extractor (and, for any tower service, the request extension): typed
//!   data, [`login`](Session::login) (rotates the ID), [`logout`](Session::logout) (destroys
//!   the record), the user's own sessions.
//! - [`RequireAuth`], [`RequireRole`], [`RequireFreshAuth`] and [`require_role`]: 401 when
//!   not signed in, 403 without the role, 503 when the store fails, on every request.
//! - [`CrossOriginGuard`]: 403 for unsafe methods a browser sends cross-site.
//! - [`Sessions`]: admin actions (list, revoke, change a user's roles) from any handler.
//! - [`ClientAddr`]: the client's address (the connection's peer, or a configured trusted
//!   proxy's `X-Forwarded-For` / `Forwarded`), which security events carry; and the optional
//!   [`GuessThrottle`] (429 for a client presenting too many unknown or malformed IDs).
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{Json, Router, http::StatusCode, routing::{get, post}};
//! use sessionward::{
//!     CrossOriginGuard, MemoryStore, RequireAuth, RequireRole, Session, SessionLayer, role,
//! };
//!
//! role!(Admin = "admin");
//!
//! async fn login(session: Session) -> Result<StatusCode, sessionward::SessionError> {
//!     // ... verify the credentials first ...
//!     session.login("alice", ["user"]).await?;
//!     Ok(StatusCode::NO_CONTENT)
//! }
//!
//! async fn me(auth: RequireAuth) -> String {
//!     auth.user.to_string()
//! }
//!
//! async fn admin(_: RequireRole<Admin>) -> &'static str {
//!     "welcome, admin"
//! }
//!
//! async fn logout(session: Session) -> StatusCode {
//!     session.logout();
//!     StatusCode::NO_CONTENT
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .route("/admin", get(admin))
//!     .route("/logout", post(logout))
//!     .layer(CrossOriginGuard::new())
//!     .layer(SessionLayer::new(MemoryStore::new()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Secure defaults
//!
//! | setting | default |
//! | --- | --- |
//! | ID | 256 bits from the OS CSPRNG, 43 base64url characters; stores see only its SHA-256 |
//! | cookie | `__Host-id`; Secure, HttpOnly, SameSite=Strict, Path=/; no Domain, no Max-Age |
//! | timeouts | idle 30 min, absolute 12 h, both on the server's clock |
//! | unknown IDs | never adopted; a write gets a fresh ID and the dead cookie is cleared |
//! | sign-in, role change | a new ID; the old one is dead |
//! | store failure | 503, never a pass |
//! | caching | `Cache-Control: no-store` on responses that set the cookie or are signed in |
//! | client address | the connection's peer; `X-Forwarded-For` only from configured proxies |
//! | log lines a client can cause | at most 60 a minute per event kind, the rest counted |
//!
//! Local development over plain http: Chromium and Firefox accept the `Secure` `__Host-`
//! cookie from `http://localhost` and `http://127.0.0.1`; WebKit (WebKitGTK 2.50, Safari)
//! does not: it drops every `Secure` cookie that comes from an http URL, localhost included,
//! so signing in appears to do nothing. Serve https locally (the demo app's `--self-signed`),
//! or, in development only, use
//! [`SessionConfigBuilder::dev_insecure`] with a cookie name without a prefix.
//!
//! # Without axum
//!
//! The layer is a plain tower [`Layer`](tower_layer::Layer) over `http` requests; the
//! [`Session`] is in the request extensions:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use sessionward::Session;
//!
//! // An inner service of a tower stack built with `SessionLayer`:
//! async fn handle(req: Request<String>) -> Result<Response<String>, Infallible> {
//!     let Some(session) = req.extensions().get::<Session>().cloned() else {
//!         return Ok(Response::new("no SessionLayer".to_owned()));
//!     };
//!     let visits: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
//!     let _ = session.insert("visits", &(visits + 1)).await;
//!     Ok(Response::new(format!("visit {}", visits + 1)))
//! }
//! ```
#![doc = include_str!("../docs/architecture.md")]
#![forbid(unsafe_code)]

/// The README's quick start and `docs/migrating.md`'s worked examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc = include_str!("../docs/migrating.md")]
mod readme_and_migration_guide {}

mod admin;
mod auth;
mod body;
mod bounded;
mod client;
mod config;
mod cookie;
mod current_user;
mod error;
mod event_limit;
mod events;
pub mod future;
mod guard;
mod info;
mod macros;
mod optional;
mod presented;
mod rejection;
mod require;
mod session;
mod session_layer;
mod shared;
mod sign_in;
mod throttle;
mod traced;

pub use admin::Sessions;
pub use auth::{RequireAuth, RequireFreshAuth, RequireRole, Role};
pub use client::{
    ClientAddr, ForwardedHeader, InvalidIpRange, IpRange, MAX_PROXY_HOPS, MissingClientAddr,
};
pub use config::{
    ConfigError, MAX_CLOCK_MARGIN, Preset, SameSite, SessionConfig, SessionConfigBuilder, Transport,
};
pub use current_user::{CurrentUser, CurrentUserRejection, LoadUser};
pub use error::SessionError;
pub use guard::{CrossOriginGuard, CrossOriginGuardService, GuardFuture};
pub use info::SessionInfo;
pub use rejection::{AuthRejection, MissingSessionLayer};
pub use require::{
    RequireRoleFuture, RequireRoleLayer, RequireRoleService, require_auth, require_role,
};
pub use session::Session;
pub use session_layer::{SessionLayer, SessionService};
pub use sign_in::safe_next;
pub use throttle::GuessThrottle;

pub use sessionward_core::{
    Clock, DataError, RngError, RoleSet, SessionHandle, SessionStore, SharedClock, StoreError,
    SweeperStatus, SystemClock, TestClock, Timestamp, UserId,
};
// The embedded store (feature `memory`, on by default).
#[cfg(feature = "memory")]
pub use sessionward_memory::{MemoryStore, MemoryStoreBuilder, PerUserLimit};
