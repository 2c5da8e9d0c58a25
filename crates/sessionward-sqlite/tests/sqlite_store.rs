//! What is particular to the SQLite store: what the file holds, a database locked by another
//! connection, sessions that outlive the process's store, the sweeper.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use sessionward_conformance::fixtures::{data_change, now, record, record_lasting, signed_in};
use sessionward_core::{
    Clock as _, SaveOutcome, SessionData, SessionHandle, SessionRecord, SessionStore, SessionToken,
    StoreError, TestClock, Timestamp, UserId,
};
use sessionward_sqlite::{SqliteStore, SweepConfig};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection as _, SqliteConnection};

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A store on the file at `path`, writes waiting at most `busy` for the lock.
async fn store_at(path: &Path, busy: Duration, sweep: SweepConfig) -> SqliteStore {
    let options = SqliteStore::connect_options(&url(path))
        .expect("options")
        .busy_timeout(busy);
    let pool = SqlitePoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    let store = SqliteStore::builder(pool).sweep(sweep).build();
    store.migrate().await.expect("migrate");
    store
}

/// Every byte of the database: the main file and its write-ahead log.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).expect("read the database file");
    let wal = path.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_file_holds_the_key_hash_and_never_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grep.db");
    let store = store_at(&path, Duration::from_secs(5), SweepConfig::disabled()).await;
    let token = SessionToken::generate().expect("rng");
    let t = now();
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
    store
        .save(&r.key, Some(0), &data_change("cart", json!(["pen"])), t)
        .await
        .expect("save");
    store.pool().close().await;

    let bytes = file_bytes(&path);
    let token_text = token.expose();
    let token_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token_text)
        .expect("the token is base64url");
    assert!(
        contains(&bytes, token.key().as_bytes()),
        "the key's hash is not in the file"
    );
    assert!(
        !contains(&bytes, token_text.as_bytes()),
        "the token text is in the file"
    );
    assert!(
        !contains(&bytes, &token_bytes),
        "the raw token bytes are in the file"
    );
    assert!(contains(&bytes, b"alice") && contains(&bytes, b"dark"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_fails_closed_after_the_busy_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locked.db");
    let store = store_at(&path, Duration::from_millis(300), SweepConfig::disabled()).await;
    let t = now();
    let r = record(None, t);
    store.create(&r).await.expect("create");

    // Another process's connection takes the write lock and keeps it.
    let mut other = SqliteConnection::connect(&url(&path))
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");
    sqlx::query("UPDATE sessionward_sessions SET user_agent = 'x'")
        .execute(&mut other)
        .await
        .expect("write under the lock");

    let change = data_change("k", json!(1));
    let started = Instant::now();
    match store.save(&r.key, Some(0), &change, t).await {
        Err(StoreError::Timeout(Some(_))) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    match store.create(&record(None, t)).await {
        Err(StoreError::Timeout(Some(_))) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    match store.rotate(&r.key, None, &record(None, t), t).await {
        Err(StoreError::Timeout(Some(_))) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "three writes waited {waited:?}, not about three busy timeouts"
    );
    // Readers do not wait for the writer (WAL): the record loads as it was committed.
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    assert_eq!(back.version, 0);
    assert_eq!(back.user_agent, None);

    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release the lock");
    let out = tokio::time::timeout(WAIT, store.save(&r.key, Some(0), &change, t))
        .await
        .expect("in time")
        .expect("save after the lock is gone");
    assert_eq!(out, SaveOutcome::Saved { version: 1 });
}

#[tokio::test]
async fn sessions_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("restart.db");
    let t = now();
    let user = UserId::from("dora");
    let mut kept = Vec::new();
    {
        let store = SqliteStore::open(&url(&path)).await.expect("open");
        for i in 0..25 {
            let r = signed_in(&user, t);
            store.create(&r).await.expect("create");
            store
                .save(&r.key, Some(0), &data_change("i", json!(i)), t)
                .await
                .expect("save");
            kept.push(r.key);
        }
        store.pool().close().await;
    }
    // A plain path works as well as a URL; migrating again does nothing.
    let store = SqliteStore::open(&path.to_string_lossy())
        .await
        .expect("reopen");
    for (i, key) in kept.iter().enumerate() {
        let back = store.load(key, t).await.expect("load").expect("kept");
        assert_eq!(back.version, 1);
        assert_eq!(back.data.to_map().expect("map").get("i"), Some(&json!(i)));
    }
    assert_eq!(store.list_by_user(&user, t).await.expect("list").len(), 25);
    assert_eq!(store.count().await.expect("count"), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_expired_rows_and_stops_with_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock::new(Timestamp::from_unix(1_900_000_000));
    let store = store_at(
        &dir.path().join("sweep.db"),
        Duration::from_secs(5),
        SweepConfig::every(Duration::from_millis(50))
            .batch(7)
            .clock(Arc::new(clock.clone())),
    )
    .await;
    let status = store.sweeper();
    assert!(status.is_running());
    let t = clock.now();
    let keep = record_lasting(Some("bob"), t, Duration::from_secs(3600), WAIT * 1000);
    store.create(&keep).await.expect("create");
    for i in 0..30 {
        let user = (i % 2 == 1).then_some("bob");
        let r = record_lasting(user, t, Duration::from_secs(60), WAIT * 1000);
        store.create(&r).await.expect("create");
    }
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
}

#[tokio::test]
async fn undecodable_rows_are_corrupt() {
    let store = SqliteStore::open("sqlite::memory:").await.expect("open");
    let t = now();
    let (a, b) = (record(Some("eve"), t), record(Some("eve"), t));
    store.create(&a).await.expect("create");
    store.create(&b).await.expect("create");
    for (stmt, key) in [
        (
            "UPDATE sessionward_sessions SET roles = 'admin' WHERE key = ?1",
            a.key,
        ),
        (
            "UPDATE sessionward_sessions SET data = '[1, 2]' WHERE key = ?1",
            b.key,
        ),
    ] {
        let done = sqlx::query(stmt)
            .bind(&key.as_bytes()[..])
            .execute(store.pool())
            .await
            .expect("damage a row");
        assert_eq!(done.rows_affected(), 1);
    }
    for key in [a.key, b.key] {
        assert!(matches!(
            store.load(&key, t).await,
            Err(StoreError::Corrupt(_))
        ));
    }
    assert!(matches!(
        store
            .save(&b.key, None, &data_change("k", json!(1)), t)
            .await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list_by_user(&UserId::from("eve"), t).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn connect_options_take_urls_paths_and_memory() {
    for (url, file) in [
        ("sqlite://var/sessions.db", "var/sessions.db"),
        ("sqlite:sessions.db", "sessions.db"),
        ("/srv/app/sessions.db", "/srv/app/sessions.db"),
    ] {
        let options = SqliteStore::connect_options(url).expect("options");
        assert_eq!(options.get_filename(), Path::new(file), "{url}");
    }
    assert!(SqliteStore::connect_options("sqlite::memory:").is_ok());
    assert!(SqliteStore::connect_options("sqlite://x.db?mode=bogus").is_err());
}

#[tokio::test]
async fn a_stale_row_is_dead_and_changes_are_forgotten_only_when_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_at(
        &dir.path().join("epochs.db"),
        Duration::from_secs(5),
        SweepConfig::disabled(),
    )
    .await;
    let pool = store.pool().clone();
    sessionward_conformance::stale_rows::check_stale_rows(
        &store,
        async |user: &str, at: i64| {
            sqlx::query("UPDATE sessionward_sessions SET authorized_at = ?1 WHERE user_id = ?2")
                .bind(at)
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
}
