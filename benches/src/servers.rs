//! The same handlers on each variant: bare axum, sessionward and tower-sessions, each on an
//! in-memory and a PostgreSQL store.
//!
//! Routes (every variant):
//! - `GET /plain`: does not use the session (the cost of the layer itself).
//! - `POST /login`: signs in a new client (creates a session holding a user and roles).
//! - `GET /read`: reads the signed-in user and roles.
//! - `POST /write`: sets one key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// No session at all: the baseline.
pub fn bare() -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/login", post(|| async { StatusCode::NO_CONTENT }))
        .route("/read", get(|| async { "alice user" }))
        .route("/write", post(|| async { StatusCode::NO_CONTENT }))
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
                    .login(format!("user-{}", next()), ["user"])
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
                        || session
                            .insert("user", format!("user-{}", next()))
                            .await
                            .is_err()
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

/// tower-sessions 0.15 with its `MemoryStore`, configured as its docs advise for an idle
/// timeout: `Expiry::OnInactivity` with `with_always_save(true)`.
pub fn tower_sessions_memory() -> Router {
    use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
        .with_always_save(true);
    tower_sessions_routes!(tower_sessions).layer(layer)
}

/// tower-sessions 0.14 (what tower-sessions-sqlx-store builds against) with its PostgreSQL
/// store, configured the same way.
pub async fn tower_sessions_postgres(url: &str) -> Result<Router, Box<dyn std::error::Error>> {
    use tower_sessions_014::{Expiry, SessionManagerLayer};
    use tower_sessions_sqlx_store::PostgresStore;
    let pool = tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = PostgresStore::new(pool);
    store.migrate().await?;
    let layer = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
        .with_always_save(true);
    Ok(tower_sessions_routes!(tower_sessions_014).layer(layer))
}

/// sessionward's PostgreSQL store on `url`.
pub async fn sessionward_postgres(url: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let store = sessionward_postgres::PostgresStore::new(pool);
    store.migrate().await?;
    Ok(sessionward(Arc::new(store)))
}
