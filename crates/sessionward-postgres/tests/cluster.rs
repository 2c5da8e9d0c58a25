//! Tests on throwaway PostgreSQL clusters that the tests start and stop themselves: server
//! faults (stopped during use, restarted), and how many statements each operation costs
//! (counted by `pg_stat_statements`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sessionward_core::{
    ChangeSet, Clock as _, RoleSet, RotateOutcome, SaveOutcome, SessionStore, StoreError,
    SystemClock, UserId,
};
use sessionward_postgres::{PostgresStore, SweepConfig};
use sqlx::postgres::PgPoolOptions;

use common::{Cluster, record};

/// How long a failing operation may take: the pool's acquire timeout (2 s) plus slack.
const FAIL_FAST: Duration = Duration::from_secs(6);
/// How long the test waits for anything at all before calling it hung.
const HANG: Duration = Duration::from_secs(20);

fn store_on(cluster: &Cluster, max_connections: u32) -> PostgresStore {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(cluster.connect_options());
    PostgresStore::builder(pool)
        .operation_timeout(Duration::from_secs(5))
        .sweep(SweepConfig::disabled())
        .build()
}

fn is_typed_failure(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(_) | StoreError::Timeout(_))
}

/// Runs `op`, which must fail with a backend or timeout error within [`FAIL_FAST`].
async fn must_fail_fast<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(HANG, op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung with the server down"));
    let took = started.elapsed();
    match outcome {
        Err(e) if is_typed_failure(&e) => {}
        other => panic!("{what} with the server down answered {other:?}"),
    }
    assert!(took < FAIL_FAST, "{what} took {took:?} to fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_fast_and_a_restart_loses_nothing() {
    let Some(cluster) = Cluster::start_new() else {
        return;
    };
    let store = Arc::new(store_on(&cluster, 4));
    tokio::time::timeout(HANG, store.migrate())
        .await
        .expect("migrate in time")
        .expect("migrate");

    // Sessions with data, users and a saved change.
    let t = SystemClock.now();
    let mut records = Vec::new();
    for i in 0..20 {
        let user = format!("user-{}", i % 4);
        let mut r = record(Some(&user), t);
        r.roles = RoleSet::from_iter(["user"]);
        store.create(&r).await.expect("create");
        let mut c = ChangeSet::default();
        c.data.insert("cart", json!([i, "book"]));
        let out = store.save(&r.key, Some(0), &c, t).await.expect("save");
        assert_eq!(out, SaveOutcome::Saved { version: 1 });
        records.push(r);
    }

    // Load continuously while the server goes away: every call must end, in bounded time.
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let (store, stop) = (store.clone(), stop.clone());
        let key = records[0].key;
        tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                match tokio::time::timeout(HANG, store.load(&key, t)).await {
                    Ok(Ok(Some(_))) => ok += 1,
                    Ok(Ok(None)) => panic!("a session vanished while the server went down"),
                    Ok(Err(e)) => {
                        assert!(is_typed_failure(&e), "untyped failure {e:?}");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_) => panic!("a load hung while the server went down"),
                }
                slowest = slowest.max(started.elapsed());
            }
            (ok, failed, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop();

    // With the server down, every operation fails quickly with a typed error.
    let r = &records[1];
    let fresh = record(Some("user-x"), t);
    let user = UserId::from("user-1");
    must_fail_fast("load", store.load(&r.key, t)).await;
    must_fail_fast("create", store.create(&fresh)).await;
    must_fail_fast(
        "save",
        store.save(&r.key, Some(1), &ChangeSet::default(), t),
    )
    .await;
    must_fail_fast("touch", store.touch(&r.key, t)).await;
    must_fail_fast("rotate", store.rotate(&r.key, Some(0), &fresh, t)).await;
    must_fail_fast("delete", store.delete(&r.key)).await;
    must_fail_fast("delete_by_user", store.delete_by_user(&user, None, t)).await;
    must_fail_fast("list_by_user", store.list_by_user(&user, t)).await;
    must_fail_fast(
        "set_roles_for_user",
        store.set_roles_for_user(&user, &RoleSet::empty(), t),
    )
    .await;
    must_fail_fast("delete_by_handle", store.delete_by_handle(&user, &r.handle)).await;
    must_fail_fast("delete_expired", store.delete_expired(t, 100)).await;

    stop.store(true, Ordering::SeqCst);
    let (ok, failed, slowest) = tokio::time::timeout(HANG, hammer)
        .await
        .expect("the load loop ended")
        .expect("the load loop did not panic");
    assert!(ok > 0, "no load succeeded before the stop");
    assert!(failed > 0, "no load failed after the stop");
    assert!(slowest < FAIL_FAST, "a load took {slowest:?}");
    eprintln!("while stopping: {ok} loads ok, {failed} failed, slowest {slowest:?}");

    // After a restart the pool reconnects and every session is there as it was.
    cluster.start();
    let deadline = Instant::now() + HANG;
    loop {
        match store.load(&records[0].key, t).await {
            Ok(Some(_)) => break,
            Ok(None) => panic!("session lost across the restart"),
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery after restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for (i, r) in records.iter().enumerate() {
        let back = store
            .load(&r.key, t)
            .await
            .expect("load after restart")
            .unwrap_or_else(|| panic!("session {i} lost across the restart"));
        assert_eq!(back.version, 1);
        assert_eq!(back.user, r.user);
        let data = back.data.to_map().expect("data");
        assert_eq!(data.get("cart"), Some(&json!([i, "book"])));
    }
    assert_eq!(store.count().await.expect("count"), 20);
    // And it takes writes again.
    store.create(&fresh).await.expect("create after restart");
    assert!(
        store
            .touch(&records[1].key, t + Duration::from_secs(5))
            .await
            .expect("touch after restart")
    );
    eprintln!(
        "cluster at {} on port {}",
        cluster.dir().display(),
        cluster.port()
    );
}

/// Statements recorded by `pg_stat_statements` since the last reset, leaving out the
/// statements that read or reset it.
async fn statements(admin: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT query, calls FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query NOT ILIKE '%pg_stat_statements%' \
         ORDER BY query",
    )
    .fetch_all(admin)
    .await
    .expect("read pg_stat_statements")
}

async fn reset(admin: &sqlx::PgPool) {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(admin)
        .await
        .expect("reset pg_stat_statements");
}

fn total(stmts: &[(String, i64)]) -> i64 {
    stmts.iter().map(|(_, calls)| calls).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_costs_exactly_one_statement() {
    let Some(cluster) = Cluster::start_new() else {
        return;
    };
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(cluster.connect_options());
    tokio::time::timeout(
        HANG,
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&admin),
    )
    .await
    .expect("in time")
    .expect("create extension");
    let store = store_on(&cluster, 1);
    store.migrate().await.expect("migrate");

    let t = SystemClock.now();
    let r = record(Some("alice"), t);
    store.create(&r).await.expect("create");
    // Warm up: the connection is open and the statement prepared, as in a running app.
    store.load(&r.key, t).await.expect("warm-up load");

    reset(&admin).await;
    const LOADS: i64 = 25;
    for _ in 0..LOADS {
        assert!(store.load(&r.key, t).await.expect("load").is_some());
    }
    let stmts = statements(&admin).await;
    assert_eq!(
        total(&stmts),
        LOADS,
        "statements for {LOADS} loads: {stmts:#?}"
    );
    assert_eq!(stmts.len(), 1, "{stmts:#?}");
    // The session by its key and, in the same statement, its user's authorization change.
    assert!(
        stmts[0]
            .0
            .contains("FROM sessionward_sessions AS s WHERE s.key = $1")
            && stmts[0].0.contains("sessionward_user_authz"),
        "{stmts:#?}"
    );

    // A miss costs one statement too.
    reset(&admin).await;
    let missing = record(None, t);
    assert!(store.load(&missing.key, t).await.expect("load").is_none());
    assert_eq!(total(&statements(&admin).await), 1);

    // The other hot-path operations, for the record: one statement each (a save with a data
    // limit too), a rotation four (BEGIN, the locking DELETE with its version check, INSERT,
    // COMMIT).
    let mut c = ChangeSet::default();
    c.data.insert("k", json!(1));
    c.data_limit = Some(1024);
    let warm = record(None, t);
    store.create(&warm).await.expect("create");
    store.save(&warm.key, Some(0), &c, t).await.expect("save");
    store.touch(&warm.key, t).await.expect("touch");
    for (what, expected) in [("create", 1), ("save", 1), ("touch", 1), ("rotate", 4)] {
        let fresh = record(None, t);
        reset(&admin).await;
        match what {
            "create" => store.create(&fresh).await.expect("create"),
            "save" => {
                store.save(&warm.key, Some(1), &c, t).await.expect("save");
            }
            "touch" => {
                store.touch(&warm.key, t).await.expect("touch");
            }
            _ => {
                let out = store
                    .rotate(&r.key, Some(r.version), &fresh, t)
                    .await
                    .expect("rotate");
                assert_eq!(out, RotateOutcome::Rotated);
            }
        }
        let stmts = statements(&admin).await;
        assert_eq!(total(&stmts), expected, "{what}: {stmts:#?}");
        eprintln!("{what}: {} statement(s)", total(&stmts));
    }

    // A rotation to a signed-in successor also locks the user's row first (five), and a
    // per-user change is four (BEGIN, the user row's lock, the change, COMMIT).
    let signed = record(Some("bob"), t);
    store.create(&signed).await.expect("create");
    let successor = record(Some("bob"), t);
    reset(&admin).await;
    let out = store
        .rotate(&signed.key, None, &successor, t)
        .await
        .expect("rotate");
    assert_eq!(out, RotateOutcome::Rotated);
    assert_eq!(total(&statements(&admin).await), 5);
    let bob = UserId::from("bob");
    reset(&admin).await;
    assert_eq!(
        store
            .set_roles_for_user(&bob, &RoleSet::empty(), t)
            .await
            .expect("roles"),
        1
    );
    assert_eq!(total(&statements(&admin).await), 4);
    reset(&admin).await;
    assert_eq!(
        store.delete_by_user(&bob, None, t).await.expect("delete"),
        1
    );
    assert_eq!(total(&statements(&admin).await), 4);
}
