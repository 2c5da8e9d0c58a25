//! The same handlers on each variant: bare axum, sessionward and tower-sessions, each on an
//! in-memory, a PostgreSQL, a SQLite, a MySQL and a Redis store.
//!
//! Two shapes. The bare routes ([`Shape::Bare`], every variant):
//! - `GET /plain`: does not use the session (the cost of the layer itself).
//! - `POST /login`: signs in a new client (creates a session holding a user and roles).
//! - `GET /read`: reads the signed-in user and roles.
//! - `POST /write`: sets one key.
//!
//! The app-shaped stack ([`Shape::App`]): the demo app's middleware and routes, built here so
//! the harness does not depend on the demo crate. From the outside in: security headers on
//! every response, a request timeout, a body read timeout, a body size limit, `GET /healthz`
//! outside the session layer, then the session layer, the cross-origin guard and the JSON
//! routes nested under `/api`:
//! - `POST /api/login`: signs in a new client, answers `{"username", "roles"}`.
//! - `GET /api/me`: through the auth check (`RequireAuth`, or the tower-sessions twin's
//!   extractor), answers `{"username", "roles"}`.
//! - `PUT /api/prefs/{key}`: through the auth check, a JSON body `{"value": ...}`, a key
//!   check, one session key set; 204.
//!
//! The tower-sessions twin uses the same outer layers and sessionward's `CrossOriginGuard`
//! (a standalone layer), so the two stacks differ only in the session work.
//!
//! The session layer and the guard wrap the routed application once, as the demo app
//! composes them (`sessioned`): `Router::layer` would wrap every route in them instead,
//! and axum clones a route's whole boxed stack on each request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, Router, middleware};
use serde_json::{Value, json};
use tower::{Layer, Service};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A user ID no other server process of the same run hands out (stores that outlive the
/// process, Redis, keep per-user indexes). The process ID is read once: `std::process::id` is
/// a `getpid` system call each time, which every sign-in route would otherwise pay on top of
/// the session work it measures.
fn next_user() -> String {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    format!("user-{}-{}", PID.get_or_init(std::process::id), next())
}

/// Which routes a server serves (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `/plain`, `/login`, `/read`, `/write` under the session layer alone.
    Bare,
    /// The demo app's stack: `/api/login`, `/api/me`, `/api/prefs/{key}`.
    App,
}

/// No session at all: the baseline.
pub fn bare() -> Router {
    bare_with_login(post(|| async { StatusCode::NO_CONTENT }))
}

/// The bare routes answering constants, with `login` as `/login`.
fn bare_with_login(login: MethodRouter) -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/login", login)
        .route("/read", get(|| async { "alice user" }))
        .route("/write", post(|| async { StatusCode::NO_CONTENT }))
}

/// The least a cookie sign-in can answer, with no session work at all: bare axum whose
/// `/login` sends the headers a sessionward sign-in sends (a `Set-Cookie` of the same length
/// and attributes, a constant token, and `Cache-Control: no-store`). Every other route is
/// [`bare`]'s. A sign-in can be no faster than this in the harness: the `login` workload of
/// this variant is the ceiling of any session library's sign-in on the machine.
pub fn floor() -> Router {
    const COOKIE: &str = concat!(
        "__Host-id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "; Path=/; Secure; HttpOnly; SameSite=Strict"
    );
    bare_with_login(post(|| async {
        (
            StatusCode::NO_CONTENT,
            [
                (header::SET_COOKIE, COOKIE),
                (header::CACHE_CONTROL, "no-store"),
            ],
        )
    }))
}

/// sessionward's routes, without the layer.
fn sessionward_routes() -> Router {
    use sessionward::{RequireAuth, Session};
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route(
            "/login",
            post(|session: Session| async move {
                session
                    .login(next_user(), ["user"])
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/read",
            get(|auth: RequireAuth| async move {
                format!("{} {}", auth.user, auth.roles.iter().next().unwrap_or(""))
            }),
        )
        .route(
            "/write",
            post(|session: Session| async move {
                session
                    .insert("n", &next())
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
}

/// sessionward with the library's defaults (idle 30 min, absolute 12 h) over `store`.
pub fn sessionward(store: Arc<dyn sessionward::SessionStore>) -> Router {
    let config = sessionward::SessionConfig::default();
    sessionward_routes().layer(sessionward::SessionLayer::from_shared_store(store, config))
}

macro_rules! tower_sessions_routes {
    ($ts:ident) => {{
        use $ts::Session;
        Router::new()
            .route("/plain", get(|| async { "ok" }))
            .route(
                "/login",
                post(|session: Session| async move {
                    // What a sign-in does with tower-sessions: a new ID, then the user.
                    if session.cycle_id().await.is_err()
                        || session.insert("user", next_user()).await.is_err()
                        || session.insert("roles", ["user"]).await.is_err()
                    {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/read",
                get(|session: Session| async move {
                    let user: Option<String> = session.get("user").await.ok().flatten();
                    let roles: Option<Vec<String>> = session.get("roles").await.ok().flatten();
                    match (user, roles) {
                        (Some(u), Some(r)) => {
                            Ok(format!("{u} {}", r.first().map_or("", String::as_str)))
                        }
                        _ => Err(StatusCode::UNAUTHORIZED),
                    }
                }),
            )
            .route(
                "/write",
                post(|session: Session| async move {
                    match session.insert("n", next()).await {
                        Ok(()) => StatusCode::NO_CONTENT,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }),
            )
    }};
}

/// The demo app's security headers, on every response.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// `routes` under `session` (a session layer, or none) and the cross-origin guard, each
/// applied once around the routed application (the demo app's composition).
fn sessioned<L>(session: L, routes: Router) -> L::Service
where
    L: Layer<sessionward::CrossOriginGuardService<Router>>,
{
    // `with_state` makes the handlers routes once, as `axum::serve` does for the outer router.
    session.layer(sessionward::CrossOriginGuard::new().layer(routes.with_state(())))
}

/// The demo app's outer layers around `sessioned` (the routes under the session layer):
/// `/healthz` outside the session layer, a 64 KiB body limit, a 10 s body read timeout, a
/// 30 s request timeout, security headers.
fn app_outer<S>(sessioned: S) -> Router
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(sessioned)
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(10)))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(middleware::map_response(security_headers))
}

/// The demo's preference key rule: 1 to 64 of `[A-Za-z0-9_-]`.
fn valid_pref_key(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `value` of a `{"value": ...}` body.
fn pref_value(body: Value) -> Option<Value> {
    match body {
        Value::Object(mut m) => m.remove("value"),
        _ => None,
    }
}

/// The demo's 400 for a body without a `value`.
fn bad_body() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_body" })),
    )
        .into_response()
}

fn bad_pref_key() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_pref_key" })),
    )
        .into_response()
}

/// The app-shaped stack with no session at all: the same layers and routes answering
/// constants (the baseline of the `app-*` workloads).
pub fn bare_app() -> Router {
    let api = Router::new()
        .route(
            "/login",
            post(|| async { Json(json!({ "username": "alice", "roles": ["user"] })) }),
        )
        .route(
            "/me",
            get(|| async { Json(json!({ "username": "alice", "roles": ["user"] })) }),
        )
        .route(
            "/prefs/{key}",
            put(
                |Path(key): Path<String>, Json(body): Json<Value>| async move {
                    if !valid_pref_key(&key) {
                        return bad_pref_key();
                    }
                    match pref_value(body) {
                        Some(_) => StatusCode::NO_CONTENT.into_response(),
                        None => bad_body(),
                    }
                },
            ),
        );
    app_outer(sessioned(
        tower::layer::util::Identity::new(),
        Router::new().nest("/api", api),
    ))
}

/// sessionward in the demo app's stack over `store`: cookie and bearer transport, the
/// library's timeouts, `RequireAuth` on the reads and writes.
///
/// # Errors
/// If the session configuration does not build.
pub fn sessionward_app(store: Arc<dyn sessionward::SessionStore>) -> Result<Router, BoxError> {
    use sessionward::{RequireAuth, Session, SessionConfig, SessionError, SessionLayer, Transport};
    let config = SessionConfig::builder()
        .transport(Transport::CookieAndBearer)
        .build()?;
    let api = Router::new()
        .route(
            "/login",
            post(|session: Session| async move {
                let user = next_user();
                session.login(user.clone(), ["user"]).await?;
                Ok::<_, SessionError>(Json(json!({ "username": user, "roles": ["user"] })))
            }),
        )
        .route(
            "/me",
            get(|auth: RequireAuth| async move {
                Json(json!({ "username": auth.user.as_str(), "roles": auth.roles.to_vec() }))
            }),
        )
        .route(
            "/prefs/{key}",
            put(
                |auth: RequireAuth, Path(key): Path<String>, Json(body): Json<Value>| async move {
                    if !valid_pref_key(&key) {
                        return Ok(bad_pref_key());
                    }
                    let Some(value) = pref_value(body) else {
                        return Ok(bad_body());
                    };
                    auth.session.insert(&format!("pref:{key}"), &value).await?;
                    Ok::<_, SessionError>(StatusCode::NO_CONTENT.into_response())
                },
            ),
        );
    Ok(app_outer(sessioned(
        SessionLayer::from_shared_store(store, config),
        Router::new().nest("/api", api),
    )))
}

/// The tower-sessions twin of [`sessionward_app`]: the same stack and routes, the auth check
/// an extractor that reads the user and roles from the session (401 without a user).
macro_rules! tower_sessions_app {
    ($ts:ident, $layer:expr) => {{
        use $ts::Session;

        /// The signed-in user, or 401: what `RequireAuth` does, on tower-sessions.
        struct Auth {
            user: String,
            roles: Vec<String>,
            session: Session,
        }

        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Auth {
            type Rejection = StatusCode;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let session = Session::from_request_parts(parts, state)
                    .await
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                let user: Option<String> = session
                    .get("user")
                    .await
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                let Some(user) = user else {
                    return Err(StatusCode::UNAUTHORIZED);
                };
                let roles: Vec<String> = session
                    .get("roles")
                    .await
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
                    .unwrap_or_default();
                Ok(Self {
                    user,
                    roles,
                    session,
                })
            }
        }

        let api = Router::new()
            .route(
                "/login",
                post(|session: Session| async move {
                    let user = next_user();
                    if session.cycle_id().await.is_err()
                        || session.insert("user", &user).await.is_err()
                        || session.insert("roles", ["user"]).await.is_err()
                    {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    Json(json!({ "username": user, "roles": ["user"] })).into_response()
                }),
            )
            .route(
                "/me",
                get(|auth: Auth| async move {
                    Json(json!({ "username": auth.user, "roles": auth.roles }))
                }),
            )
            .route(
                "/prefs/{key}",
                put(
                    |auth: Auth, Path(key): Path<String>, Json(body): Json<Value>| async move {
                        if !valid_pref_key(&key) {
                            return bad_pref_key();
                        }
                        let Some(value) = pref_value(body) else {
                            return bad_body();
                        };
                        match auth.session.insert(&format!("pref:{key}"), value).await {
                            Ok(()) => StatusCode::NO_CONTENT.into_response(),
                            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        }
                    },
                ),
            );
        app_outer(sessioned($layer, Router::new().nest("/api", api)))
    }};
}

/// tower-sessions 0.15 with its `MemoryStore`, configured as its docs advise for an idle
/// timeout: `Expiry::OnInactivity` with `with_always_save(true)`.
pub fn tower_sessions_memory(shape: Shape) -> Router {
    use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
        .with_always_save(true);
    match shape {
        Shape::Bare => tower_sessions_routes!(tower_sessions).layer(layer),
        Shape::App => tower_sessions_app!(tower_sessions, layer),
    }
}

/// tower-sessions 0.14 (what tower-sessions-sqlx-store and tower-sessions-redis-store build
/// against) over `store`, configured as [`tower_sessions_memory`].
fn tower_sessions_014<S>(store: S, shape: Shape) -> Router
where
    S: tower_sessions_014::SessionStore + Clone,
{
    use tower_sessions_014::{Expiry, SessionManagerLayer};
    let layer = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
        .with_always_save(true);
    match shape {
        Shape::Bare => tower_sessions_routes!(tower_sessions_014).layer(layer),
        Shape::App => tower_sessions_app!(tower_sessions_014, layer),
    }
}

/// tower-sessions with tower-sessions-sqlx-store's `PostgresStore` (8 connections).
///
/// # Errors
/// If the database is unreachable or the migration fails.
pub async fn tower_sessions_postgres(url: &str, shape: Shape) -> Result<Router, BoxError> {
    use tower_sessions_sqlx_store::PostgresStore;
    let pool = tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = PostgresStore::new(pool);
    store.migrate().await?;
    Ok(tower_sessions_014(store, shape))
}

/// tower-sessions with tower-sessions-sqlx-store's `SqliteStore` on the file at `url`, with
/// the connection settings sessionward's store uses (WAL, `synchronous = FULL`, a 5 s busy
/// timeout, 4 connections), so the comparison is of the stores, not of the journal modes.
///
/// # Errors
/// If the file cannot be opened or the migration fails.
pub async fn tower_sessions_sqlite(url: &str, shape: Shape) -> Result<Router, BoxError> {
    use std::str::FromStr as _;
    use tower_sessions_sqlx_store::SqliteStore;
    use tower_sessions_sqlx_store::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    let store = SqliteStore::new(pool);
    store.migrate().await?;
    Ok(tower_sessions_014(store, shape))
}

/// tower-sessions with tower-sessions-sqlx-store's `MySqlStore` (8 connections; its table is
/// `tower_sessions.session`).
///
/// # Errors
/// If the server is unreachable or the migration fails.
pub async fn tower_sessions_mysql(url: &str, shape: Shape) -> Result<Router, BoxError> {
    use tower_sessions_sqlx_store::MySqlStore;
    let pool = tower_sessions_sqlx_store::sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = MySqlStore::new(pool);
    store.migrate().await?;
    Ok(tower_sessions_014(store, shape))
}

/// tower-sessions with tower-sessions-redis-store's `RedisStore` on a fred pool of 6
/// connections, as its docs set it up.
///
/// # Errors
/// If `url` does not parse or the server is unreachable.
pub async fn tower_sessions_redis(url: &str, shape: Shape) -> Result<Router, BoxError> {
    use tower_sessions_redis_store::RedisStore;
    use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
    let pool = Pool::new(Config::from_url(url)?, None, None, None, 6)?;
    let _connections = pool.connect();
    pool.wait_for_connect().await?;
    Ok(tower_sessions_014(RedisStore::new(pool), shape))
}

/// tower-sessions with tower-sessions-redis-store's `RedisStore` on a fred pool of 6 cluster
/// clients (each connected to every primary) seeded by the first of the comma-separated
/// `seeds` (`redis://host:port`).
///
/// # Errors
/// If the seed does not parse or the cluster is unreachable.
pub async fn tower_sessions_redis_cluster(seeds: &str, shape: Shape) -> Result<Router, BoxError> {
    use tower_sessions_redis_store::RedisStore;
    use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
    let seed = seeds.split(',').next().unwrap_or_default();
    let url = seed.replacen("redis://", "redis-cluster://", 1);
    let pool = Pool::new(Config::from_url(&url)?, None, None, None, 6)?;
    let _connections = pool.connect();
    pool.wait_for_connect().await?;
    Ok(tower_sessions_014(RedisStore::new(pool), shape))
}

/// sessionward over `store` in `shape`.
///
/// # Errors
/// If the session configuration does not build.
pub fn sessionward_shaped(
    store: Arc<dyn sessionward::SessionStore>,
    shape: Shape,
) -> Result<Router, BoxError> {
    match shape {
        Shape::Bare => Ok(sessionward(store)),
        Shape::App => sessionward_app(store),
    }
}

/// sessionward's `PostgresStore` on `url` (8 connections).
///
/// # Errors
/// If the database is unreachable or the migration fails.
pub async fn sessionward_postgres(
    url: &str,
) -> Result<Arc<dyn sessionward::SessionStore>, BoxError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = sessionward_postgres::PostgresStore::new(pool);
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// sessionward's `SqliteStore` on the file at `url`, as [`SqliteStore::open`] sets it up
/// (WAL, `synchronous = FULL`, 4 connections).
///
/// [`SqliteStore::open`]: sessionward_sqlite::SqliteStore::open
///
/// # Errors
/// If the file cannot be opened or the migration fails.
pub async fn sessionward_sqlite(url: &str) -> Result<Arc<dyn sessionward::SessionStore>, BoxError> {
    Ok(Arc::new(sessionward_sqlite::SqliteStore::open(url).await?))
}

/// sessionward's `MySqlStore` on `url` (8 connections).
///
/// # Errors
/// If the server is unreachable or the migration fails.
pub async fn sessionward_mysql(url: &str) -> Result<Arc<dyn sessionward::SessionStore>, BoxError> {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = sessionward_mysql::MySqlStore::new(pool);
    store.migrate().await?;
    Ok(Arc::new(store))
}

/// sessionward's `RedisStore` on `url`, its keys under the namespace `swbench`.
///
/// # Errors
/// If `url` does not parse or the server is unreachable.
pub async fn sessionward_redis(url: &str) -> Result<Arc<dyn sessionward::SessionStore>, BoxError> {
    Ok(Arc::new(
        sessionward_redis::RedisStore::builder()
            .namespace("swbench")
            .connect(url)
            .await?,
    ))
}

/// sessionward's `RedisStore` in cluster mode on the cluster whose comma-separated seed URLs
/// are `seeds`, its keys under the namespace `swbench`.
///
/// # Errors
/// If no seed parses or answers.
pub async fn sessionward_redis_cluster(
    seeds: &str,
) -> Result<Arc<dyn sessionward::SessionStore>, BoxError> {
    Ok(Arc::new(
        sessionward_redis::RedisStore::builder()
            .namespace("swbench")
            .connect_cluster(seeds.split(',').filter(|s| !s.is_empty()))
            .await?,
    ))
}
