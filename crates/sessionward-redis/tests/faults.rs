//! Faults: the test's own `redis-server` is killed, restarted, frozen and thawed while a store
//! uses it. Every operation must end quickly with a `StoreError` (never hang, never panic), and
//! the store must work again once Redis is back, without being rebuilt.

mod common;

use std::time::{Duration, Instant};

use common::RedisServer;
use serde_json::json;
use sessionward_conformance::fixtures;
use sessionward_core::{
    ChangeSet, Clock as _, SessionRecord, SessionStore, SessionToken, StoreError, SystemClock,
    Timestamp, UserId,
};
use sessionward_redis::{RedisStore, SweepConfig};

/// The store's deadline per operation in this test.
const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// What "fails fast" means here: the deadline plus generous scheduling slack on a busy machine.
const FAST: Duration = Duration::from_secs(3);
/// The test's own bound on any single await, so that a hang fails the test instead of CI.
const HANG: Duration = Duration::from_secs(10);

fn record(at: Timestamp) -> SessionRecord {
    fixtures::record_lasting(
        Some("faulty"),
        at,
        Duration::from_secs(600),
        Duration::from_secs(3600),
    )
}

/// Runs one store operation under the test's hang bound; returns its result and duration.
async fn timed<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> (Result<T, StoreError>, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"));
    (out, started.elapsed())
}

/// Every kind of operation fails, each within `FAST`; returns the errors.
async fn all_fail_fast(store: &RedisStore, live: &SessionRecord, phase: &str) -> Vec<StoreError> {
    let t = SystemClock.now();
    let mut errors = Vec::new();
    let mut change = ChangeSet::default();
    change.data.insert("k", json!(1));
    let user = UserId::from("faulty");
    macro_rules! check {
        ($name:literal, $fut:expr) => {{
            let (out, took) = timed($name, $fut).await;
            match out {
                Err(e) => {
                    assert!(took < FAST, "{phase}: {} took {took:?} to fail", $name);
                    errors.push(e);
                }
                Ok(_) => panic!("{phase}: {} succeeded against a dead Redis", $name),
            }
        }};
    }
    check!("load", store.load(&live.key, t));
    check!("create", store.create(&record(t)));
    check!("save", store.save(&live.key, Some(0), &change, t));
    check!("touch", store.touch(&live.key, t));
    check!("rotate", store.rotate(&live.key, None, &record(t), t));
    check!("delete", store.delete(&live.key));
    check!("delete_by_user", store.delete_by_user(&user, None, t));
    check!("list_by_user", store.list_by_user(&user, t));
    check!("delete_expired", store.delete_expired(t, 10));
    errors
}

/// Polls until a load succeeds (the client reconnected); panics after `within`.
async fn wait_until_working(store: &RedisStore, within: Duration) -> Duration {
    let started = Instant::now();
    let key = SessionToken::generate().expect("rng").key();
    loop {
        let (out, _) = timed(
            "load while reconnecting",
            store.load(&key, SystemClock.now()),
        )
        .await;
        if out.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the store did not reconnect within {within:?}: {:?}",
            out.err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_then_restarted_redis() {
    let Some(mut server) = RedisServer::start("dead_then_restarted_redis") else {
        return;
    };
    let store = RedisStore::builder()
        .namespace("faults")
        .timeout(OP_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .sweep(SweepConfig::disabled())
        .connect(&server.url())
        .await
        .expect("connect");
    let t = SystemClock.now();
    let r = record(t);
    store.create(&r).await.expect("create while up");
    assert!(store.load(&r.key, t).await.expect("load").is_some());

    // Killed: the socket is reset, reconnection is refused.
    server.kill();
    let errors = all_fail_fast(&store, &r, "killed").await;
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, StoreError::Backend(_) | StoreError::Timeout(_))),
        "{errors:?}"
    );
    // And again: a second round must not be slower (no piling up of reconnect attempts).
    all_fail_fast(&store, &r, "still dead").await;

    // Restarted on the same port, empty (no persistence): the same store object reconnects.
    server.restart();
    let took = wait_until_working(&store, Duration::from_secs(10)).await;
    eprintln!("reconnected {took:?} after the restart");
    assert!(
        store.load(&r.key, t).await.expect("load").is_none(),
        "the restarted Redis is empty"
    );
    let r2 = record(t);
    store.create(&r2).await.expect("create after restart");
    // The scripts are loaded again transparently (NOSCRIPT -> SCRIPT LOAD -> EVALSHA).
    let mut change = ChangeSet::default();
    change.data.insert("after", json!("restart"));
    let out = store
        .save(&r2.key, Some(0), &change, t)
        .await
        .expect("save after restart");
    assert!(
        matches!(out, sessionward_core::SaveOutcome::Saved { version: 1 }),
        "{out:?}"
    );
    let back = store.load(&r2.key, t).await.expect("load").expect("live");
    assert_eq!(
        back.data.to_map().expect("map").get("after"),
        Some(&json!("restart"))
    );
    assert_eq!(
        store
            .list_by_user(&UserId::from("faulty"), t)
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_then_thawed_redis() {
    let Some(server) = RedisServer::start("frozen_then_thawed_redis") else {
        return;
    };
    let store = RedisStore::builder()
        .namespace("frozen")
        .timeout(OP_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .reconnect_retries(1)
        .sweep(SweepConfig::disabled())
        .connect(&server.url())
        .await
        .expect("connect");
    let t = SystemClock.now();
    let r = record(t);
    store.create(&r).await.expect("create while up");

    // Frozen: the connection stays open but nothing answers; only timeouts can end a request.
    server.pause();
    let errors = all_fail_fast(&store, &r, "frozen").await;
    assert!(
        errors.iter().all(|e| matches!(e, StoreError::Timeout(_))),
        "a frozen Redis must give timeouts: {errors:?}"
    );

    // Thawed: the same store works again, and the record is still there.
    server.resume();
    let took = wait_until_working(&store, Duration::from_secs(10)).await;
    eprintln!("working again {took:?} after the thaw");
    let back = store
        .load(&r.key, t)
        .await
        .expect("load")
        .expect("the record survived");
    assert_eq!(back.handle, r.handle);
    assert!(
        store
            .touch(&r.key, t + Duration::from_secs(1))
            .await
            .expect("touch")
    );
    assert!(store.delete(&r.key).await.expect("delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_store_starts_before_redis() {
    let Some(mut server) = RedisServer::start("lazy_store_starts_before_redis") else {
        return;
    };
    server.kill();
    let client = sessionward_redis::redis::Client::open(server.url()).expect("url");
    let store = RedisStore::builder()
        .namespace("lazy")
        .timeout(OP_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .reconnect_retries(0)
        .sweep(SweepConfig::disabled())
        .connect_lazy(client)
        .expect("a lazy store needs no server");
    let t = SystemClock.now();
    let r = record(t);
    // No Redis yet: operations fail fast instead of waiting for it.
    let (out, took) = timed("create before Redis", store.create(&r)).await;
    assert!(out.is_err() && took < FAST, "{out:?} after {took:?}");
    server.restart();
    wait_until_working(&store, Duration::from_secs(10)).await;
    store.create(&r).await.expect("create once Redis is up");
    assert!(store.load(&r.key, t).await.expect("load").is_some());
}
