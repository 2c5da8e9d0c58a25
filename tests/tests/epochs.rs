//! SEC-16, acceptance 1 of issue 12: sign-ins racing a demotion (`Sessions::set_roles`) and
//! an account disablement (`Sessions::revoke_user`), through the layer, on every store. The
//! race itself is the layer's own (`crates/sessionward/tests/race`): sign-ins that read the
//! user's roles are held on a barrier while an administrator acts, then finish; no session
//! from them may reach the admin-only route.
//!
//! Each store needs its service: `DATABASE_URL` (PostgreSQL), `REDIS_URL`, `MYSQL_URL`;
//! without one the test skips, unless `SESSIONWARD_REQUIRE_SERVICES=1` (CI), where it fails.
//! SQLite runs on a temporary file, memory in process.

#[path = "../../crates/sessionward/tests/race/mod.rs"]
mod race;

use std::sync::Arc;
use std::time::Duration;

use sessionward::SessionStore;
use sessionward_conformance::services::require_env;

async fn run(store: Arc<dyn SessionStore>, label: &str) {
    race::sign_ins_racing_a_demotion_and_a_disablement(store, label).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_on_memory() {
    let store = sessionward::MemoryStore::builder()
        .sweep(sessionward_postgres::SweepConfig::disabled())
        .build();
    run(Arc::new(store), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_on_postgres() {
    let Some(url) = require_env("race_on_postgres", "DATABASE_URL") else {
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
    let store = sessionward_postgres::PostgresStore::builder(pool)
        .sweep(sessionward_postgres::SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    run(Arc::new(store), "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_on_mysql() {
    let Some(url) = require_env("race_on_mysql", "MYSQL_URL") else {
        return;
    };
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to MYSQL_URL: {e}"));
    let store = sessionward_mysql::MySqlStore::builder(pool)
        .sweep(sessionward_mysql::SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    run(Arc::new(store), "mysql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_on_redis() {
    let Some(url) = require_env("race_on_redis", "REDIS_URL") else {
        return;
    };
    let store = sessionward_redis::RedisStore::builder()
        .sweep(sessionward_redis::SweepConfig::disabled())
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to REDIS_URL: {e}"));
    run(Arc::new(store), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_on_sqlite() {
    let dir = std::env::temp_dir().join(format!(
        "sessionward-epochs-{}-{}",
        std::process::id(),
        sessionward::SessionHandle::generate().expect("rng")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("sessions.db").display());
    let store = sessionward_sqlite::SqliteStore::open(&url)
        .await
        .expect("open the SQLite file");
    run(Arc::new(store), "sqlite").await;
    let _ = std::fs::remove_dir_all(&dir);
}
