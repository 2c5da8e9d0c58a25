//! What is particular to the MySQL store: what the table holds, and a server killed under load
//! (a server of the test's own, never the machine's).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use sessionward_conformance::fixtures::{anonymous, data_change, now};
use sessionward_core::{
    SessionData, SessionHandle, SessionRecord, SessionStore, SessionToken, StoreError, UserId,
};
use sessionward_mysql::{MySqlStore, SweepConfig};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use common::{OwnServer, TestDb};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_table_holds_the_key_hash_and_never_the_token() {
    let Some(db) = TestDb::connect("swm_grep").await else {
        return;
    };
    let (name, store) = db.store().await;
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

    // Every column of every row, as bytes.
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CONCAT_WS(0x1f, `key`, handle, user_hash, user_id, roles, data, created_at, \
         last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, \
         user_agent, version) FROM {name}.sessionward_sessions"
    )))
    .fetch_all(db.admin())
    .await
    .expect("dump the table");
    assert_eq!(rows.len(), 1);
    let bytes = rows.concat();
    let token_text = token.expose();
    let token_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token_text)
        .expect("the token is base64url");
    assert!(
        contains(&bytes, token.key().as_bytes()),
        "the key's hash is not in the table"
    );
    assert!(
        !contains(&bytes, token_text.as_bytes()),
        "the token text is in the table"
    );
    assert!(
        !contains(&bytes, &token_bytes),
        "the raw token bytes are in the table"
    );
    assert!(contains(&bytes, b"alice") && contains(&bytes, b"dark") && contains(&bytes, b"pen"));
    db.cleanup().await;
}

/// MariaDB killed (SIGKILL) while requests run: every operation then fails fast with a typed
/// error (fail closed: no request passes as if it had a session, none hangs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_and_closed() {
    if common::mysql_url().is_none() {
        return;
    }
    let Some(mut server) = OwnServer::start("a_killed_server_fails_fast_and_closed").await else {
        return;
    };
    let options: MySqlConnectOptions = server.url.parse().expect("url");
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(options);
    let store = Arc::new(
        MySqlStore::builder(pool)
            .operation_timeout(Duration::from_secs(3))
            .sweep(SweepConfig::disabled())
            .build(),
    );
    store.migrate().await.expect("migrate");
    let t = now();
    let r = anonymous(t);
    store.create(&r).await.expect("create");

    // Load: 8 tasks reading and saving in a loop until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, stop, key) = (store.clone(), stop.clone(), r.key);
        tasks.push(tokio::spawn(async move {
            let mut errors = 0_u32;
            let mut ok = 0_u32;
            let mut slowest = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let out = if i % 2 == 0 {
                    store.load(&key, t).await.map(|_| ())
                } else {
                    store
                        .save(&key, None, &data_change(&format!("k{i}"), json!(i)), t)
                        .await
                        .map(|_| ())
                };
                slowest = slowest.max(started.elapsed());
                match out {
                    Ok(()) => ok += 1,
                    Err(StoreError::Backend(_) | StoreError::Timeout(_)) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(other) => panic!("unexpected error kind: {other:?}"),
                }
            }
            (ok, errors, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // With the server dead, each kind of operation fails with a typed error, and fast.
    for _ in 0..3 {
        let started = Instant::now();
        let out = store.load(&r.key, t).await;
        assert!(
            matches!(out, Err(StoreError::Backend(_) | StoreError::Timeout(_))),
            "load with the server dead: {out:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert!(store.create(&anonymous(t)).await.is_err());
        assert!(store.rotate(&r.key, None, &anonymous(t), t).await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        let (o, e, slowest) = task.await.expect("no panic");
        ok += o;
        errors += e;
        assert!(
            slowest < Duration::from_millis(3500),
            "an operation took {slowest:?}: bounded by the acquire and operation timeouts"
        );
    }
    assert!(ok > 0, "nothing succeeded before the kill");
    assert!(errors > 0, "nothing failed after the kill");
}

#[tokio::test]
async fn a_stale_row_is_dead_and_changes_are_forgotten_only_when_allowed() {
    let Some(db) = TestDb::connect("swm_epochs").await else {
        return;
    };
    let (_name, store) = db.store().await;
    let pool = store.pool().clone();
    sessionward_conformance::stale_rows::check_stale_rows(
        &store,
        async |user: &str, at: i64| {
            sqlx::query("UPDATE sessionward_sessions SET authorized_at = ? WHERE user_id = ?")
                .bind(at)
                .bind(user.as_bytes())
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
