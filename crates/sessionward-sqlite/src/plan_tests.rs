//! The query plans of the store's own statements (`EXPLAIN QUERY PLAN`) on a migrated
//! database of realistic size: lookups by key, user and expiry go through their indexes, and a
//! load reads the user's change time through the user table's primary key, never a scan.

use sqlx::{AssertSqlSafe, SqlitePool};

use crate::sql;
use crate::{SqliteStore, SweepConfig};

const ROWS: i64 = 20_000;
const NOW: i64 = 1_900_000_000;

async fn populated() -> SqlitePool {
    let options = SqliteStore::connect_options("sqlite::memory:").expect("options");
    let pool = SqliteStore::pool_for(options, true);
    let store = SqliteStore::builder(pool.clone())
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, \
            last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at, authorized_at) \
         SELECT randomblob(32), randomblob(16), \
            CASE WHEN i % 5 = 0 THEN NULL ELSE 'user-' || (i % 4000) END, '[\"user\"]', '{{}}', \
            {NOW} - 3600, {NOW}, 1800, {NOW} + 43200, \
            CASE WHEN i % 100 = 0 THEN {NOW} - 60 ELSE {NOW} + (i % 1000) * 60 END, {NOW} - 3600 \
         FROM n; \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 4 FROM n WHERE i < 3996) \
         INSERT INTO sessionward_user_authz (user_id, changed_at) \
         SELECT 'user-' || i, {NOW} - (i % 48) * 3600 FROM n; \
         ANALYZE;"
    )))
    .execute(&pool)
    .await
    .expect("populate");
    pool
}

/// The plan of `statement` (parameters unbound: SQLite plans them as unknown values), one
/// line per step.
async fn plan(pool: &SqlitePool, statement: &'static str) -> String {
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {statement}")))
            .fetch_all(pool)
            .await
            .expect("explain");
    rows.into_iter()
        .map(|(_, _, _, detail)| detail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether some step of `plan` scans a whole table (rather than searching an index).
fn scans(plan: &str, table: &str) -> bool {
    plan.lines()
        .any(|l| l.starts_with("SCAN") && l.contains(table) && !l.contains("USING"))
}

#[tokio::test]
async fn lookups_use_the_indexes() {
    let pool = populated().await;

    let load = plan(&pool, sql::LOAD).await;
    assert!(
        load.contains("SEARCH s USING INDEX sqlite_autoindex_sessionward_sessions_1 (key=?)")
            && load.contains("SEARCH u USING PRIMARY KEY (user_id=?)")
            && !load.contains("SCAN"),
        "load:\n{load}"
    );

    let list = plan(&pool, sql::LIST_BY_USER).await;
    assert!(
        list.contains("sessionward_sessions_user_idx")
            && list.contains("SEARCH u USING PRIMARY KEY (user_id=?)")
            && !scans(&list, "s"),
        "list_by_user:\n{list}"
    );

    let sweep = plan(&pool, sql::DELETE_EXPIRED).await;
    assert!(
        sweep.contains("sessionward_sessions_expires_idx") && !scans(&sweep, "sessionward"),
        "delete_expired:\n{sweep}"
    );

    let forget = plan(&pool, sql::FORGET_AUTHZ).await;
    assert!(
        forget.contains("sessionward_user_authz_changed_idx")
            && forget.contains("sessionward_sessions_user_idx")
            && !scans(&forget, "s"),
        "forget:\n{forget}"
    );

    for (name, statement) in [
        ("create", sql::CREATE),
        ("touch", sql::TOUCH),
        ("save_read", sql::SAVE_READ),
        ("rotate_read", sql::ROTATE_READ),
    ] {
        let p = plan(&pool, statement).await;
        assert!(!scans(&p, "s") && !scans(&p, "u"), "{name}:\n{p}");
    }
}
