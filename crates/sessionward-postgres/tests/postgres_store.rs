//! What is particular to the PostgreSQL store, against the server at `DATABASE_URL`: what the
//! table holds, migrations from several instances at once, the sweeper, typed errors.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use sessionward_conformance::fixtures::data_change;
use sessionward_core::{
    ChangeSet, Clock as _, DataError, RoleSet, SaveOutcome, SessionData, SessionHandle,
    SessionRecord, SessionStore, SessionToken, StoreError, SystemClock, TestClock, Timestamp,
    UserId,
};
use sessionward_postgres::{MIGRATIONS_TABLE, PostgresStore, SweepConfig};

use common::{TestDb, record};

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

async fn dump(db: &TestDb, schema: &str) -> String {
    sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(t::text, E'\\n') FROM {schema}.sessionward_sessions t"
    )))
    .fetch_one(db.admin())
    .await
    .expect("dump the table")
    .unwrap_or_default()
}

#[tokio::test]
async fn the_table_holds_the_key_hash_and_never_the_token() {
    let Some(db) = TestDb::connect("swt_grep").await else {
        return;
    };
    let (schema, store) = db.store().await;
    let token = SessionToken::generate().expect("rng");
    let t = SystemClock.now();
    let mut r = SessionRecord::new(
        token.key(),
        SessionHandle::generate().expect("rng"),
        t,
        Duration::from_secs(600),
        Duration::from_secs(3600),
    );
    r.user = Some(UserId::from("alice"));
    r.data = SessionData::from_json(r#"{"theme":"dark"}"#).expect("object");
    store.create(&r).await.expect("create");

    let text = dump(&db, &schema).await;
    let token_text = token.expose();
    let token_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token_text)
        .expect("the token is base64url");
    let token_hex: String = token_bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        text.contains(&format!("\\\\x{}", token.key().to_hex())),
        "the key's hash is not in the table: {text}"
    );
    assert!(
        !text.contains(&token_text),
        "the token text is in the table"
    );
    assert!(
        !text.contains(&token_hex),
        "the raw token bytes are in the table"
    );
    assert!(text.contains("alice") && text.contains("dark"));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_migrate_at_once() {
    let Some(db) = TestDb::connect("swt_migr").await else {
        return;
    };
    let (schema, pool) = db.schema_pool(8).await;
    let stores: Vec<_> = (0..6)
        .map(|_| {
            Arc::new(
                PostgresStore::builder(pool.clone())
                    .sweep(SweepConfig::disabled())
                    .build(),
            )
        })
        .collect();
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { tokio::time::timeout(WAIT, s.migrate()).await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("no panic")
            .expect("migrated in time")
            .expect("migrate");
    }
    // Again, as at the next start-up: nothing to do.
    stores[0].migrate().await.expect("second migrate");
    let applied: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.{MIGRATIONS_TABLE} WHERE success"
    )))
    .fetch_one(db.admin())
    .await
    .expect("read the migrations table");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations folder")
        .count();
    assert_eq!(usize::try_from(applied).expect("count"), files);
    let r = record(None, SystemClock.now());
    stores[3].create(&r).await.expect("create");
    assert!(
        stores[5]
            .load(&r.key, r.created_at)
            .await
            .expect("load")
            .is_some()
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_expired_rows_and_stops_with_the_store() {
    let Some(db) = TestDb::connect("swt_sweep").await else {
        return;
    };
    let (_schema, pool) = db.schema_pool(3).await;
    let clock = TestClock::new(Timestamp::from_unix(1_900_000_000));
    let store = PostgresStore::builder(pool)
        .sweep(
            SweepConfig::every(Duration::from_millis(50))
                .batch(7)
                .clock(Arc::new(clock.clone())),
        )
        .build();
    store.migrate().await.expect("migrate");
    let status = store.sweeper();
    assert!(status.is_running());

    let t = clock.now();
    let mut keep = record(Some("bob"), t);
    keep.idle_timeout = Duration::from_secs(3600);
    store.create(&keep).await.expect("create");
    for i in 0..30 {
        let mut r = record(if i % 2 == 0 { None } else { Some("bob") }, t);
        r.idle_timeout = Duration::from_secs(60);
        store.create(&r).await.expect("create");
    }
    assert_eq!(store.count().await.expect("count"), 31);
    // Nothing has expired yet: the sweeper deletes nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.count().await.expect("count"), 31);

    clock.advance(Duration::from_secs(61));
    let deadline = Instant::now() + WAIT;
    while store.count().await.expect("count") != 1 {
        assert!(Instant::now() < deadline, "the sweeper did not sweep");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store
            .load(&keep.key, clock.now())
            .await
            .expect("load")
            .is_some()
    );

    drop(store);
    let deadline = Instant::now() + WAIT;
    while status.is_running() {
        assert!(Instant::now() < deadline, "the sweeper outlived its store");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    db.cleanup().await;
}

#[tokio::test]
async fn undecodable_rows_are_corrupt() {
    let Some(db) = TestDb::connect("swt_corr").await else {
        return;
    };
    let (schema, store) = db.store().await;
    let t = SystemClock.now();
    let (a, b) = (record(Some("eve"), t), record(Some("eve"), t));
    store.create(&a).await.expect("create");
    store.create(&b).await.expect("create");
    // Damage the rows behind the store's back (and its constraints).
    for stmt in [
        "ALTER TABLE {s}.sessionward_sessions DROP CONSTRAINT sessionward_sessions_handle_check",
        "ALTER TABLE {s}.sessionward_sessions DROP CONSTRAINT sessionward_sessions_data_check",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt.replace("{s}", &schema)))
            .execute(db.admin())
            .await
            .expect("drop a constraint");
    }
    for (stmt, key) in [
        (
            "UPDATE {s}.sessionward_sessions SET handle = '\\x0102' WHERE key = $1",
            a.key,
        ),
        (
            "UPDATE {s}.sessionward_sessions SET data = '[1, 2]' WHERE key = $1",
            b.key,
        ),
    ] {
        let done = sqlx::query(sqlx::AssertSqlSafe(stmt.replace("{s}", &schema)))
            .bind(&key.as_bytes()[..])
            .execute(db.admin())
            .await
            .expect("damage a row");
        assert_eq!(done.rows_affected(), 1);
    }
    let why = |r: Result<(), StoreError>| match r {
        Err(StoreError::Corrupt(source)) => source.to_string(),
        other => panic!("expected Corrupt, got {other:?}"),
    };
    assert!(why(store.load(&a.key, t).await.map(|_| ())).contains("handle of 2 bytes"));
    assert!(why(store.load(&b.key, t).await.map(|_| ())).contains("not a JSON object"));
    why(store
        .list_by_user(&UserId::from("eve"), t)
        .await
        .map(|_| ()));
    db.cleanup().await;
}

#[tokio::test]
async fn sql_like_input_is_only_ever_data() {
    let Some(db) = TestDb::connect("swt_sqli").await else {
        return;
    };
    let (_schema, store) = db.store().await;
    let t = SystemClock.now();
    let evil = "'; DROP TABLE sessionward_sessions; --";
    let mut r = record(Some(evil), t);
    r.roles = RoleSet::from_iter(["a,b", "{c}", "\"d\"", "e\\f", "NULL", evil]);
    r.user_agent = Some(format!("Mozilla/5.0 {evil} \\x00 $1"));
    r.data = SessionData::from_json(
        serde_json::to_string(&json!({ evil: evil, "{k}": "$2", "a'b": [1, "x"] })).expect("json"),
    )
    .expect("object");
    store.create(&r).await.expect("create");
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    assert_eq!(back.user, r.user);
    assert_eq!(back.roles, r.roles);
    assert_eq!(back.user_agent, r.user_agent);
    assert_eq!(
        back.data.to_map().expect("map"),
        r.data.to_map().expect("map")
    );

    // Keys with SQL and array syntax are set and removed as keys.
    let mut c = ChangeSet::default();
    c.data.remove(evil);
    c.data.remove("{k}");
    c.data.insert("x'); --", json!({"y": evil}));
    assert_eq!(
        store.save(&r.key, Some(0), &c, t).await.expect("save"),
        SaveOutcome::Saved { version: 1 }
    );
    // Roles with array syntax (roles change per user, not through a save).
    let odd = RoleSet::from_iter(["{}", "a\"b"]);
    let owner = UserId::from(evil);
    assert_eq!(
        store
            .set_roles_for_user(&owner, &odd, t)
            .await
            .expect("roles"),
        1
    );
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    let map = back.data.to_map().expect("map");
    assert_eq!(
        map.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a'b", "x'); --"]
    );
    assert_eq!(back.roles, RoleSet::from_iter(["{}", "a\"b"]));
    let user = UserId::from(evil);
    assert_eq!(store.list_by_user(&user, t).await.expect("list").len(), 1);
    assert_eq!(
        store.delete_by_user(&user, None, t).await.expect("delete"),
        1
    );
    assert_eq!(store.count().await.expect("the table is still there"), 0);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_operation_times_out_and_the_store_recovers() {
    let Some(db) = TestDb::connect("swt_tout").await else {
        return;
    };
    let (schema, pool) = db.schema_pool(3).await;
    let store = PostgresStore::builder(pool)
        .operation_timeout(Duration::from_millis(500))
        .sweep(SweepConfig::disabled())
        .build();
    store.migrate().await.expect("migrate");
    let t = SystemClock.now();
    let r = record(None, t);
    store.create(&r).await.expect("create");

    // Another client holds the row lock.
    let mut blocker = db.admin().begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {schema}.sessionward_sessions WHERE key = $1 FOR UPDATE"
    )))
    .bind(&r.key.as_bytes()[..])
    .execute(&mut *blocker)
    .await
    .expect("lock the row");

    let mut c = ChangeSet::default();
    c.data.insert("k", json!(1));
    let started = Instant::now();
    match store.save(&r.key, Some(0), &c, t).await {
        Err(StoreError::Timeout(Some(_))) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // Reads do not wait for row locks.
    assert!(store.load(&r.key, t).await.expect("load").is_some());

    blocker.rollback().await.expect("release the lock");
    let out = tokio::time::timeout(WAIT, store.save(&r.key, Some(0), &c, t))
        .await
        .expect("in time")
        .expect("save after the lock is gone");
    assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
    db.cleanup().await;
}

/// The size a limited save measures is the length of the data's text as the store keeps and
/// returns it (`data::text`, jsonb's text form, which writes `": "` and `", "`): one byte under
/// it is refused with that size and changes nothing, the size itself is saved.
#[tokio::test]
async fn the_data_limit_measures_the_text_the_record_loads_as() {
    let Some(db) = TestDb::connect("swt_limit").await else {
        return;
    };
    let (_schema, store) = db.store().await;
    let t = SystemClock.now();
    let r = record(None, t);
    // A twin record learns, unlimited, what text each step leaves.
    let twin = record(None, t);
    store.create(&r).await.expect("create");
    store.create(&twin).await.expect("create");
    let mut steps = Vec::new();
    let mut c = ChangeSet::default();
    c.data.insert("a", json!("x"));
    steps.push((c, Some(r#"{"a": "x"}"#)));
    let mut c = ChangeSet::default();
    c.data
        .insert("quote\"back\\slash", json!({"n": [1, 2.5, null]}));
    steps.push((c, None));
    let mut c = ChangeSet::default();
    c.data.insert("ctl\n\t\u{1}", json!("snow ☃ é"));
    steps.push((c, None));
    let mut c = ChangeSet::default();
    c.data.remove("a");
    c.data.insert("ünï", json!(12_345_678_901_234_567_890_u64));
    steps.push((c, None));
    let mut c = ChangeSet::default();
    c.data.clear();
    c.data.insert("only", json!(true));
    steps.push((c, Some(r#"{"only": true}"#)));
    for (i, (mut c, text)) in steps.into_iter().enumerate() {
        let v = u64::try_from(i).expect("small");
        store
            .save(&twin.key, Some(v), &c, t)
            .await
            .expect("twin save");
        let shown = store.load(&twin.key, t).await.expect("load").expect("live");
        if let Some(text) = text {
            assert_eq!(shown.data.as_json(), text, "step {i}");
        }
        let expected = shown.data.len_bytes();
        let before = store.load(&r.key, t).await.expect("load").expect("live");
        c.data_limit = Some(expected - 1);
        match store.save(&r.key, Some(v), &c, t).await {
            Err(StoreError::Data(DataError::TooLarge { size, limit })) => {
                assert_eq!((size, limit), (expected, expected - 1), "step {i}");
            }
            other => panic!("step {i}: expected TooLarge, got {other:?}"),
        }
        let same = store.load(&r.key, t).await.expect("load").expect("live");
        assert_eq!(same.version, before.version, "step {i}");
        assert_eq!(same.data, before.data, "step {i}");
        c.data_limit = Some(expected);
        assert_eq!(
            store.save(&r.key, Some(v), &c, t).await.expect("save"),
            SaveOutcome::Saved { version: v + 1 },
            "step {i}"
        );
        let after = store.load(&r.key, t).await.expect("load").expect("live");
        assert_eq!(after.data, shown.data, "step {i}");
    }
    // A structural change at a stale version is a conflict before any size is considered.
    let mut c = ChangeSet::default();
    c.data.insert("big", json!("x".repeat(100)));
    c.idle_timeout = Some(Duration::from_secs(60));
    c.data_limit = Some(10);
    assert_eq!(
        store.save(&r.key, Some(0), &c, t).await.expect("save"),
        SaveOutcome::Conflict { current_version: 5 }
    );
    // A save that changes no data key is not measured (as in `SessionData::apply`).
    let c = ChangeSet {
        last_seen_at: Some(t),
        data_limit: Some(1),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.save(&r.key, Some(5), &c, t).await.expect("save"),
        SaveOutcome::Saved { version: 6 }
    );
    // A gone record stays gone, limit or not.
    store.delete(&r.key).await.expect("delete");
    let mut c = ChangeSet::default();
    c.data.insert("big", json!("x".repeat(100)));
    c.data_limit = Some(10);
    assert_eq!(
        store.save(&r.key, Some(6), &c, t).await.expect("save"),
        SaveOutcome::Gone
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_stale_row_is_dead_and_changes_are_forgotten_only_when_allowed() {
    let Some(db) = TestDb::connect("swt_epochs").await else {
        return;
    };
    let (_schema, store) = db.store().await;
    let pool = store.pool().clone();
    sessionward_conformance::stale_rows::check_stale_rows(
        &store,
        async |user: &str, at: i64| {
            sqlx::query("UPDATE sessionward_sessions SET authorized_at = $1 WHERE user_id = $2")
                .bind(Timestamp::from_unix(at).to_offset_date_time())
                .bind(user)
                .execute(&pool)
                .await
                .expect("make stale");
        },
        async || {
            sqlx::query_scalar("SELECT count(*) FROM sessionward_user_authz")
                .fetch_one(&pool)
                .await
                .expect("count")
        },
    )
    .await;
    db.cleanup().await;
}

/// Touches and data saves commit asynchronously through a setting local to their own
/// statement: it must not stay on the (pooled) connection, where it would make a later
/// sign-out or role change asynchronous too.
#[tokio::test]
async fn asynchronous_commit_stays_inside_touches_and_data_saves() {
    let Some(db) = TestDb::connect("swt_async").await else {
        return;
    };
    // One connection: every statement below runs on the connection the store used.
    let (_schema, pool) = db.schema_pool(1).await;
    let store = common::migrated_store(pool.clone()).await;
    let setting = || async {
        sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .expect("show")
    };
    assert_eq!(setting().await, "on");
    let t = SystemClock.now();
    let r = record(Some("alice"), t);
    store.create(&r).await.expect("create");
    let later = t + Duration::from_secs(120);
    assert!(store.touch(&r.key, later).await.expect("touch"));
    assert_eq!(setting().await, "on", "a touch left asynchronous commit on");
    let saved = store
        .save(&r.key, None, &data_change("theme", json!("dark")), later)
        .await
        .expect("save");
    assert!(matches!(saved, SaveOutcome::Saved { .. }), "{saved:?}");
    assert_eq!(
        setting().await,
        "on",
        "a data save left asynchronous commit on"
    );
    let loaded = store
        .load(&r.key, later)
        .await
        .expect("load")
        .expect("live");
    assert_eq!(loaded.last_seen_at, later);
    assert_eq!(
        loaded.data.to_map().expect("map").get("theme"),
        Some(&json!("dark"))
    );
    // A touch of a key that is not there changes nothing and leaves nothing behind either.
    let gone = SessionToken::generate().expect("rng").key();
    assert!(!store.touch(&gone, later).await.expect("touch"));
    assert_eq!(setting().await, "on");
    db.cleanup().await;
}
