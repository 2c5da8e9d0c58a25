//! The query plans of the store's own statements, against the server at `DATABASE_URL`:
//! lookups by key, user and expiry go through their indexes on a table of realistic size.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use crate::row::to_db;
use crate::sql;
use crate::{PostgresStore, SweepConfig};
use sessionward_core::Timestamp;

const ROWS: i64 = 20_000;
const NOW: i64 = 1_900_000_000;

/// A migrated schema of its own holding [`ROWS`] sessions of 4,000 users, 1 % of them expired at
/// [`NOW`] and 2 % live but due for the sweeper (active since their first expiry); `None`
/// (skipped) without `DATABASE_URL`.
async fn populated() -> Option<(PgPool, PgPool, String)> {
    let url = sessionward_conformance::services::require_env("plan_tests", "DATABASE_URL")?;
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL parses");
    let options = options.options([("statement_timeout", "60s")]);
    let connect = |o: PgConnectOptions| {
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(o)
    };
    ensure_database(&options).await;
    let admin = connect(options.clone());
    let schema = format!(
        "swt_plan_{}_{}",
        Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unix(),
        std::process::id()
    );
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");
    let pool = connect(options.options([("search_path", &schema)]));
    let store = PostgresStore::builder(pool.clone())
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    // Rows with random keys; every 100th expired at NOW, the others live for hours to days.
    // `sweep_at` is the expiry, except for every 50th row (counting from 1): touched since its
    // first expiry, which has passed, so the sweeper must stamp it and keep it.
    sqlx::query(
        "INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, \
            last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at, sweep_at, \
            authorized_at) \
         SELECT sha256(int8send(i)), substr(sha256(int8send(-i)), 1, 16), \
            CASE WHEN i % 5 = 0 THEN NULL ELSE 'user-' || (i % 4000) END, '{user}', \
            jsonb_build_object('n', i), to_timestamp($2) - interval '1 hour', \
            to_timestamp($2), 1800, to_timestamp($2) + interval '12 hours', e.at, \
            CASE WHEN i % 50 = 1 THEN to_timestamp($2) - interval '2 minutes' ELSE e.at END, \
            to_timestamp($2) - interval '1 hour' \
         FROM generate_series(1, $1) AS i, LATERAL (SELECT \
            CASE WHEN i % 100 = 0 THEN to_timestamp($2) - interval '1 minute' \
                 ELSE to_timestamp($2) + (i % 1000) * interval '1 minute' END AS at) AS e",
    )
    .bind(ROWS)
    .bind(NOW)
    .execute(&pool)
    .await
    .expect("populate");
    // A quarter of the users had an authorization change, some of them more than a day ago.
    sqlx::query(
        "INSERT INTO sessionward_user_authz (user_id, changed_at) \
         SELECT 'user-' || i, to_timestamp($1) - (i % 48) * interval '1 hour' \
         FROM generate_series(0, 3999, 4) AS i",
    )
    .bind(NOW)
    .execute(&pool)
    .await
    .expect("populate users");
    sqlx::raw_sql("ANALYZE sessionward_sessions; ANALYZE sessionward_user_authz")
        .execute(&pool)
        .await
        .expect("analyze");
    Some((admin, pool, schema))
}

/// Creates the database `options` name if it does not exist yet (a fresh CI machine has only
/// `postgres`).
async fn ensure_database(options: &PgConnectOptions) {
    use sqlx::{ConnectOptions as _, Connection as _};
    let missing = match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            false
        }
        Ok(Err(sqlx::Error::Database(e))) => e.code().as_deref() == Some("3D000"),
        Ok(Err(e)) => panic!("cannot connect to DATABASE_URL: {e}"),
        Err(_) => panic!("connecting to DATABASE_URL timed out"),
    };
    let Some(name) = options.get_database().filter(|_| missing) else {
        return;
    };
    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let mut admin = tokio::time::timeout(
        Duration::from_secs(10),
        options.clone().database("postgres").connect(),
    )
    .await
    .expect("connect in time")
    .expect("connect to the postgres database");
    if let Err(e) = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
    {
        let duplicate =
            matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P04"));
        assert!(duplicate, "CREATE DATABASE {name}: {e}");
    }
    let _ = admin.close().await;
}

/// The plan of `statement` with the given parameters, as text.
async fn explain<'q>(
    pool: &PgPool,
    statement: &'static str,
    bind: impl FnOnce(
        sqlx::query::QueryScalar<'q, sqlx::Postgres, String, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryScalar<
        'q,
        sqlx::Postgres,
        String,
        sqlx::postgres::PgArguments,
    >,
) -> String {
    let query = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {statement}")));
    bind(query)
        .fetch_all(pool)
        .await
        .expect("explain")
        .join("\n")
}

/// Whether some node of `plan` scans index `index` (plain, index-only or bitmap).
fn scans_index(plan: &str, index: &str) -> bool {
    plan.lines()
        .any(|line| line.contains("Index") && line.contains("Scan") && line.contains(index))
}

#[tokio::test]
async fn lookups_use_the_indexes() {
    let Some((admin, pool, schema)) = populated().await else {
        return;
    };
    // Checked in a task of its own, so that the schema is dropped whatever the outcome.
    let outcome = tokio::spawn(check_plans(pool)).await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .expect("drop schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn check_plans(pool: PgPool) {
    let key: Vec<u8> = sqlx::query_scalar("SELECT sha256(int8send(4242::int8))")
        .fetch_one(&pool)
        .await
        .expect("a key");
    let now = to_db(Timestamp::from_unix(NOW));

    // One statement: the session by its key, its user's change time by the user's key.
    let load = explain(&pool, sql::LOAD, |q| q.bind(key.clone()).bind(now)).await;
    assert!(
        scans_index(&load, "sessionward_sessions_pkey")
            && scans_index(&load, "sessionward_user_authz_pkey")
            && !load.contains("Seq Scan"),
        "load:\n{load}"
    );

    let day_ago = to_db(Timestamp::from_unix(NOW) - sessionward_core::row_plan::AUTHZ_RETENTION);
    // The candidates through the change-time index, each checked through the user index (the
    // final delete of a few hundred rows of a small table may scan it: that is cheap).
    let forget = explain(&pool, sql::FORGET_AUTHZ, |q| q.bind(day_ago).bind(1000_i64)).await;
    assert!(
        scans_index(&forget, "sessionward_user_authz_changed_idx")
            && scans_index(&forget, "sessionward_sessions_user_idx")
            && !forget.contains("Seq Scan on sessionward_sessions"),
        "forget:\n{forget}"
    );

    let sweep = explain(&pool, sql::SWEEP, |q| q.bind(now).bind(1000_i64)).await;
    assert!(
        scans_index(&sweep, "sessionward_sessions_sweep_idx")
            && scans_index(&sweep, "sessionward_sessions_pkey")
            && !sweep.contains("Seq Scan"),
        "sweep:\n{sweep}"
    );

    let list = explain(&pool, sql::LIST_BY_USER, |q| q.bind("user-17").bind(now)).await;
    assert!(
        scans_index(&list, "sessionward_sessions_user_idx")
            && scans_index(&list, "sessionward_user_authz_pkey")
            && !list.contains("Seq Scan"),
        "list_by_user:\n{list}"
    );

    // The generic plans too: what a long-running application uses once PostgreSQL stops
    // planning its prepared statements for each set of values.
    let mut conn = pool.acquire().await.expect("a connection");
    for (name, types, statement) in [
        ("sw_load", "bytea, timestamptz", sql::LOAD),
        ("sw_sweep", "timestamptz, int8", sql::SWEEP),
    ] {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "PREPARE {name}({types}) AS {statement}"
        )))
        .execute(&mut *conn)
        .await
        .expect("prepare");
    }
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .expect("force generic plans");
    let generic = |rows: Vec<String>| rows.join("\n");
    // EXECUTE takes no bind parameters: the (test's own) values go in as literals.
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let load: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "EXPLAIN EXECUTE sw_load('\\x{key_hex}', to_timestamp({NOW}))"
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("explain generic load");
    let load = generic(load);
    assert!(
        scans_index(&load, "sessionward_sessions_pkey")
            && scans_index(&load, "sessionward_user_authz_pkey")
            && !load.contains("Seq Scan"),
        "generic load:\n{load}"
    );
    let sweep: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "EXPLAIN EXECUTE sw_sweep(to_timestamp({NOW}), 1000)"
    )))
    .fetch_all(&mut *conn)
    .await
    .expect("explain generic sweep");
    let sweep = generic(sweep);
    assert!(
        scans_index(&sweep, "sessionward_sessions_sweep_idx")
            && scans_index(&sweep, "sessionward_sessions_pkey")
            && !sweep.contains("Seq Scan"),
        "generic sweep:\n{sweep}"
    );
    drop(conn.detach());

    // And the sweep deletes what the plan promises: the expired 1 %, in batches, past the due
    // rows that are still live (stamped and kept).
    let store = PostgresStore::builder(pool.clone())
        .sweep(SweepConfig::disabled())
        .build();
    let mut deleted = 0;
    loop {
        let n =
            sessionward_core::SessionStore::delete_expired(&store, Timestamp::from_unix(NOW), 64)
                .await
                .expect("sweep");
        assert!(n <= 64);
        deleted += n;
        if n < 64 {
            break;
        }
    }
    assert_eq!(deleted, u64::try_from(ROWS / 100).unwrap_or(0));
    let (left, due, early): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE sweep_at <= $1), \
            count(*) FILTER (WHERE sweep_at > expires_at) FROM sessionward_sessions",
    )
    .bind(now)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!((left, due, early), (ROWS - ROWS / 100, 0, 0));
}
