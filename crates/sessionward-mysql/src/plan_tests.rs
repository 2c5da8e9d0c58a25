//! The query plans of the store's own statements against the server at `MYSQL_URL`: a load
//! finds the session by its primary key and its user's change time by the user table's
//! primary key, in one statement, on a table of realistic size.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, MySqlPool, Row as _};

use crate::sql;
use crate::{MySqlStore, SweepConfig};

const ROWS: i64 = 20_000;
const NOW: i64 = 1_900_000_000;

/// One step of a plan: table, access type, key, extra.
type Step = (String, String, Option<String>, String);

fn text(row: &MySqlRow, column: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(column)
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<Vec<u8>>, _>(column)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
}

async fn explain(pool: &MySqlPool, statement: &str, binds: &[i64]) -> Vec<Step> {
    let sql = format!("EXPLAIN {statement}");
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    q.fetch_all(pool)
        .await
        .expect("explain")
        .iter()
        .map(|r| {
            (
                text(r, "table").unwrap_or_default(),
                text(r, "type").unwrap_or_default(),
                text(r, "key"),
                text(r, "Extra").unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_load_uses_both_primary_keys() {
    let Some(url) = sessionward_conformance::services::require_env("plan_tests", "MYSQL_URL")
    else {
        return;
    };
    let options: MySqlConnectOptions = url.parse().expect("MYSQL_URL parses");
    let connect = |o: MySqlConnectOptions| {
        MySqlPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(o)
    };
    let admin = connect(options.clone());
    let name = format!("swt_plan_{}", std::process::id());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create database");
    let pool = connect(options.database(&name));
    let outcome = tokio::spawn(check(pool)).await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("drop database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn check(pool: MySqlPool) {
    let store = MySqlStore::builder(pool.clone())
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    // Sessions of 4,000 users (every fifth anonymous), a quarter of the users with a change
    // (the rows are generated from a small recursive CTE: servers cap recursion at 1,000).
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO sessionward_sessions (`key`, handle, user_hash, user_id, roles, data, \
            created_at, last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at, \
            authorized_at) \
         WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < 199), \
            n(i) AS (SELECT a.i * 100 + b.i + 1 FROM d AS a, d AS b WHERE b.i < {ROWS} / 200) \
         SELECT UNHEX(SHA2(i, 256)), LEFT(UNHEX(SHA2(-i, 256)), 16), \
            IF(i % 5 = 0, NULL, UNHEX(SHA2(CONCAT('user-', i % 4000), 256))), \
            IF(i % 5 = 0, NULL, CONCAT('user-', i % 4000)), '[\"user\"]', '{{}}', \
            {NOW} - 3600, {NOW}, 1800, {NOW} + 43200, {NOW} + (i % 1000) * 60, {NOW} - 3600 \
         FROM n; \
         INSERT INTO sessionward_user_authz (user_hash, changed_at) \
         WITH RECURSIVE d(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < 199), \
            n(i) AS (SELECT (a.i * 5 + b.i) * 4 FROM d AS a, d AS b WHERE b.i < 5) \
         SELECT UNHEX(SHA2(CONCAT('user-', i), 256)), {NOW} - (i % 48) * 3600 FROM n; \
         ANALYZE TABLE sessionward_sessions, sessionward_user_authz;"
    )))
    .execute(&pool)
    .await
    .expect("populate");
    // Row 4004: signed in as user-4, who has a change.
    let key: Vec<u8> = sqlx::query_scalar("SELECT UNHEX(SHA2(4004, 256))")
        .fetch_one(&pool)
        .await
        .expect("a key");
    // EXPLAIN with the key as a literal: what the server plans for the prepared statement's
    // values (an equality on the full primary key is planned the same for any value).
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let load = sql::LOAD.replacen("s.`key` = ?", &format!("s.`key` = x'{hex}'"), 1);
    let plan = explain(&pool, &load, &[NOW]).await;
    // The session row is a const table (read once, through the primary key, while the server
    // plans); that makes the `NOT EXISTS` uncorrelated, and its user row a const table too
    // (read through the user table's primary key: the only way a table becomes const), or
    // an `eq_ref` through it.
    let session_by_key = plan
        .iter()
        .any(|(t, ty, k, _)| t == "s" && ty == "const" && k.as_deref() == Some("PRIMARY"));
    let user_by_key = plan.iter().any(|(t, ty, k, extra)| {
        (t == "u" && matches!(ty.as_str(), "const" | "eq_ref") && k.as_deref() == Some("PRIMARY"))
            || (t.is_empty() && extra.contains("const table"))
    });
    assert!(
        session_by_key && user_by_key && !plan.iter().any(|(_, ty, _, _)| ty == "ALL"),
        "load: {plan:?}"
    );
    let list = explain(
        &pool,
        &sql::LIST_BY_USER
            .replacen(
                "s.user_hash = ?",
                "s.user_hash = UNHEX(SHA2('user-17', 256))",
                1,
            )
            .replacen("s.user_id = ?", "s.user_id = 'user-17'", 1),
        &[NOW],
    )
    .await;
    // The same `NOT EXISTS` as the load's, correlated here: an `eq_ref` on the user table's
    // primary key per session row.
    assert!(
        list.iter()
            .any(|(t, _, k, _)| t == "s" && k.as_deref() == Some("sessionward_sessions_user_idx"))
            && list
                .iter()
                .any(|(t, ty, k, _)| t == "u" && ty == "eq_ref" && k.as_deref() == Some("PRIMARY"))
            && !list.iter().any(|(_, ty, _, _)| ty == "ALL"),
        "list_by_user: {list:?}"
    );
}
