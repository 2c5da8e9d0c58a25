//! Activity changes no indexed column, against the server at `DATABASE_URL` (PostgreSQL 15 or
//! later, for `pg_stat_force_next_flush`): touches and data saves are HOT updates, and the
//! sweeper finds expired rows through `sweep_at`, which it keeps a lower bound of the expiry.

mod common;

use std::time::Duration;

use serde_json::json;
use sessionward_conformance::fixtures::data_change;
use sessionward_core::{
    ChangeSet, Clock as _, SaveOutcome, SessionRecord, SessionStore, SystemClock, Timestamp,
};
use sessionward_postgres::{MIGRATIONS_TABLE, PostgresStore, SweepConfig};
use sqlx::PgPool;

use common::{TestDb, record};

/// The first migration that knows `sweep_at`.
const SWEEP_AT_MIGRATION: i64 = 20_261_202_140_000;

/// `(n_tup_upd, n_tup_hot_upd)` of the session table in `schema`, current: the store's
/// connection (its pool has one) reports its pending counters before it answers the flush
/// request, and the reading connection drops any snapshot it holds.
async fn update_counters(db: &TestDb, store_pool: &PgPool, schema: &str) -> (i64, i64) {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(store_pool)
        .await
        .expect("flush the store connection's counters");
    let mut conn = db.admin().acquire().await.expect("a connection");
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .expect("clear the statistics snapshot");
    sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
         WHERE schemaname = $1 AND relname = 'sessionward_sessions'",
    )
    .bind(schema)
    .fetch_one(&mut *conn)
    .await
    .expect("read the table's counters")
}

/// `(expires_at, sweep_at)` of the row under `r`'s key, as Unix seconds.
async fn times(pool: &PgPool, r: &SessionRecord) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT extract(epoch FROM expires_at)::int8, \
            CASE WHEN sweep_at = '-infinity' THEN -1 ELSE extract(epoch FROM sweep_at)::int8 END \
         FROM sessionward_sessions WHERE key = $1",
    )
    .bind(&r.key.as_bytes()[..])
    .fetch_optional(pool)
    .await
    .expect("read the row's times")
}

/// Sweeps at `now` in calls of `batch` until a call deletes fewer, as the sweeper does;
/// returns the total. Every call deletes at most `batch`.
async fn sweep_all(store: &PostgresStore, now: Timestamp, batch: usize) -> u64 {
    let mut total = 0;
    loop {
        let n = store.delete_expired(now, batch).await.expect("sweep");
        assert!(n <= batch as u64, "{n} deleted by a call of {batch}");
        total += n;
        if n < batch as u64 {
            return total;
        }
    }
}

fn lasting(user: Option<&str>, t: Timestamp, idle_secs: u64) -> SessionRecord {
    let mut r = record(user, t);
    r.idle_timeout = Duration::from_secs(idle_secs);
    r
}

#[tokio::test]
async fn touches_and_data_saves_are_hot_updates() {
    let Some(db) = TestDb::connect("swt_hot").await else {
        return;
    };
    // One connection: the counters the flush reports are those of every statement below.
    let (schema, pool) = db.schema_pool(1).await;
    let store = common::migrated_store(pool.clone()).await;
    let t = SystemClock.now();
    const N: u64 = 40;
    let records: Vec<_> = (0..N)
        .map(|i| {
            record(
                if i.is_multiple_of(2) {
                    Some("hotuser")
                } else {
                    None
                },
                t,
            )
        })
        .collect();
    for r in &records {
        store.create(r).await.expect("create");
    }
    let created: Vec<_> = {
        let mut v = Vec::new();
        for r in &records {
            v.push(times(&pool, r).await.expect("row"));
        }
        v
    };

    let (upd0, hot0) = update_counters(&db, &pool, &schema).await;
    for (i, r) in (0_u64..).zip(&records) {
        // What a request does: a touch (a read past the touch interval), and a data save with
        // its activity and the layer's size limit (a write).
        let later = t + Duration::from_secs(60 + i);
        assert!(store.touch(&r.key, later).await.expect("touch"));
        let mut c = data_change("theme", json!(format!("dark-{i}")));
        c.last_seen_at = Some(later + Duration::from_secs(1));
        c.data_limit = Some(4096);
        let out = store
            .save(&r.key, None, &c, later + Duration::from_secs(1))
            .await
            .expect("save");
        assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
    }
    let (upd1, hot1) = update_counters(&db, &pool, &schema).await;
    let (updates, hot) = (upd1 - upd0, hot1 - hot0);
    eprintln!("{hot} of {updates} updates were HOT");
    let expected = i64::try_from(2 * N).expect("small");
    assert_eq!(updates, expected, "updates counted");
    // Every one of them in place, but for the odd one that found its page full.
    assert!(
        hot >= updates - updates / 10,
        "{hot} of {updates} updates were HOT"
    );

    // The expiry moved with the activity, `sweep_at` (indexed) stayed where creation put it.
    for (r, before) in records.iter().zip(&created) {
        let (expires, sweep) = times(&pool, r).await.expect("row");
        assert!(expires > before.0, "the expiry did not move");
        assert_eq!(sweep, before.1, "a touch or a data save moved sweep_at");
    }

    // A save that shortens the lifetime lowers `sweep_at` to the new expiry.
    let r = &records[0];
    let shorten = ChangeSet {
        idle_timeout: Some(Duration::from_secs(10)),
        ..ChangeSet::default()
    };
    let out = store
        .save(&r.key, None, &shorten, t + Duration::from_secs(200))
        .await
        .expect("save");
    assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
    let (expires, sweep) = times(&pool, r).await.expect("row");
    assert_eq!(sweep, expires);
    assert!(expires < created[0].0, "the lifetime did not shrink");
    db.cleanup().await;
}

#[tokio::test]
async fn the_lazy_sweep_deletes_every_expired_row_and_keeps_live_ones() {
    let Some(db) = TestDb::connect("swt_lazy").await else {
        return;
    };
    let (_schema, store) = db.store().await;
    let pool = store.pool().clone();
    // The sweeper's (injected) time, never the system clock's.
    let t = Timestamp::from_unix(1_900_000_000);
    let at = |s: u64| t + Duration::from_secs(s);
    let user = |i: usize| {
        if i.is_multiple_of(2) {
            Some("lazy")
        } else {
            None
        }
    };
    // Idle 60 s and never used again: expire at t+60.
    let idle: Vec<_> = (0..10).map(|i| lasting(user(i), t, 60)).collect();
    // Idle 60 s, touched at t+50 or saved at t+50: expire at t+110, due at t+60.
    let active: Vec<_> = (0..10).map(|i| lasting(user(i), t, 60)).collect();
    // Idle an hour, shortened to 10 s by a save at t+5: expire at t+15.
    let shortened: Vec<_> = (0..5).map(|i| lasting(user(i), t, 3600)).collect();
    // Idle an hour.
    let long: Vec<_> = (0..5).map(|i| lasting(user(i), t, 3600)).collect();
    for r in idle.iter().chain(&active).chain(&shortened).chain(&long) {
        store.create(r).await.expect("create");
    }
    for (i, r) in active.iter().enumerate() {
        if i.is_multiple_of(2) {
            assert!(store.touch(&r.key, at(50)).await.expect("touch"));
        } else {
            let mut c = data_change("k", json!(i));
            c.last_seen_at = Some(at(50));
            let out = store.save(&r.key, None, &c, at(50)).await.expect("save");
            assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
        }
    }
    for r in &shortened {
        let c = ChangeSet {
            idle_timeout: Some(Duration::from_secs(10)),
            last_seen_at: Some(at(5)),
            ..ChangeSet::default()
        };
        let out = store.save(&r.key, None, &c, at(5)).await.expect("save");
        assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
    }
    assert_eq!(store.count().await.expect("count"), 30);

    // Nothing has expired yet.
    assert_eq!(sweep_all(&store, at(14), 3).await, 0);
    assert_eq!(store.count().await.expect("count"), 30);
    // The shortened sessions, although created with an hour to live: their save lowered
    // `sweep_at`.
    assert_eq!(sweep_all(&store, at(15), 3).await, 5);
    for r in &shortened {
        assert!(
            times(&pool, r).await.is_none(),
            "a shortened session stayed"
        );
    }
    // At t+70, the 20 sessions of t+60 are due; the 10 untouched ones go, in calls of 3 that
    // step over the live ones, which are stamped with their expiry and kept.
    assert_eq!(sweep_all(&store, at(70), 3).await, 10);
    for r in &idle {
        assert!(times(&pool, r).await.is_none(), "an expired session stayed");
    }
    for r in &active {
        assert_eq!(
            times(&pool, r).await,
            Some((at(110).unix(), at(110).unix())),
            "a live due session was not stamped with its expiry"
        );
        assert!(store.load(&r.key, at(70)).await.expect("load").is_some());
    }
    // Again at the same time: nothing is due any more, nothing is deleted or stamped.
    assert_eq!(sweep_all(&store, at(70), 3).await, 0);
    // Loads never depend on the sweep: a row the sweeper would not visit yet (its `sweep_at`
    // later than its expiry, as a save by an older version of this store could leave it) is
    // still dead once it expires.
    sqlx::query("UPDATE sessionward_sessions SET sweep_at = 'infinity' WHERE key = $1")
        .bind(&active[0].key.as_bytes()[..])
        .execute(&pool)
        .await
        .expect("push sweep_at away");
    assert!(
        store
            .load(&active[0].key, at(110))
            .await
            .expect("load")
            .is_none()
    );
    assert!(!store.touch(&active[0].key, at(110)).await.expect("touch"));
    // At t+110 the active ones expire (but the one the sweeper cannot see yet).
    assert_eq!(sweep_all(&store, at(110), 4).await, 9);
    assert_eq!(store.count().await.expect("count"), 6);
    store.delete(&active[0].key).await.expect("delete");
    // The long ones were never due: untouched by every sweep, live.
    for r in &long {
        assert_eq!(
            times(&pool, r).await,
            Some((at(3600).unix(), at(3600).unix()))
        );
        assert!(store.load(&r.key, at(110)).await.expect("load").is_some());
    }
    assert_eq!(sweep_all(&store, at(3600), 100).await, 5);
    assert_eq!(store.count().await.expect("count"), 0);
    db.cleanup().await;
}

/// The migration to `sweep_at` from the schema before it, with rows in it: they keep their
/// data and stay loadable, become due at once, and the first sweep deletes the expired ones
/// and stamps the others.
#[tokio::test]
async fn the_sweep_migration_upgrades_a_populated_table() {
    let Some(db) = TestDb::connect("swt_upgr").await else {
        return;
    };
    let (schema, pool) = db.schema_pool(2).await;
    let mut previous = sqlx::migrate!("./migrations");
    previous.dangerous_set_table_name(MIGRATIONS_TABLE);
    let older: Vec<_> = previous
        .migrations
        .iter()
        .filter(|m| m.version < SWEEP_AT_MIGRATION)
        .cloned()
        .collect();
    assert!(older.len() < previous.migrations.len());
    previous.migrations = older.into();
    previous.run(&pool).await.expect("the previous schema");

    // Rows as the previous version wrote them: three live, two expired at `t`.
    let t = SystemClock.now();
    let mut rows = Vec::new();
    for i in 0..5_u64 {
        let created = t - Duration::from_secs(100);
        let mut r = record(
            if i.is_multiple_of(2) {
                Some("old")
            } else {
                None
            },
            created,
        );
        r.idle_timeout = Duration::from_secs(if i < 3 { 3600 } else { 50 });
        r.data =
            sessionward_core::SessionData::from_json(format!(r#"{{"n":{i}}}"#)).expect("object");
        sqlx::query(
            "INSERT INTO sessionward_sessions (key, handle, user_id, data, created_at, \
                last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at, \
                authorized_at) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $5, $6, $7, $8, $5)",
        )
        .bind(&r.key.as_bytes()[..])
        .bind(&r.handle.as_bytes()[..])
        .bind(r.user.as_ref().map(|u| u.as_str().to_owned()))
        .bind(r.data.as_json())
        .bind(created.to_offset_date_time())
        .bind(i64::try_from(r.idle_timeout.as_secs()).expect("small"))
        .bind(r.absolute_expires_at.to_offset_date_time())
        .bind(r.expires_at().to_offset_date_time())
        .execute(&pool)
        .await
        .expect("a row of the previous schema");
        rows.push(r);
    }

    let store = PostgresStore::builder(pool.clone())
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate a populated table");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = 'sessionward_sessions' ORDER BY 1",
    )
    .bind(&schema)
    .fetch_all(db.admin())
    .await
    .expect("list indexes");
    assert_eq!(
        indexes,
        [
            "sessionward_sessions_pkey",
            "sessionward_sessions_sweep_idx",
            "sessionward_sessions_user_idx"
        ]
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(times(&pool, r).await.map(|(_, s)| s), Some(-1), "row {i}");
        let loaded = store.load(&r.key, t).await.expect("load");
        assert_eq!(loaded.is_some(), i < 3, "row {i}");
        if let Some(back) = loaded {
            assert_eq!(
                back.data.to_map().expect("map"),
                r.data.to_map().expect("map"),
                "row {i}"
            );
            assert_eq!(back.user, r.user, "row {i}");
        }
    }
    assert_eq!(store.delete_expired(t, 100).await.expect("sweep"), 2);
    for (i, r) in rows.iter().enumerate() {
        let after = times(&pool, r).await;
        if i < 3 {
            let (expires, sweep) = after.expect("kept");
            assert_eq!(sweep, expires, "row {i} not stamped");
        } else {
            assert!(after.is_none(), "row {i} not deleted");
        }
    }
    // And the store works on the upgraded rows as on its own.
    let mut c = data_change("k", json!("v"));
    c.last_seen_at = Some(t);
    assert!(matches!(
        store.save(&rows[0].key, None, &c, t).await.expect("save"),
        SaveOutcome::Saved { .. }
    ));
    db.cleanup().await;
}
