//! RedisStore: the conformance suite against `REDIS_URL`, and what is particular to Redis (one
//! command per load, TTLs, the key layout, index upkeep) on a `redis-server` of the test's own.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{RedisServer, command_calls, unique};
use serde_json::json;
use sessionward_conformance::fixtures;
use sessionward_conformance::services::require_env;
use sessionward_core::{
    ChangeSet, Clock as _, DataError, SaveOutcome, SessionData, SessionRecord, SessionStore,
    SessionToken, StoreError, SystemClock, Timestamp, UserId,
};
use sessionward_redis::redis::{self, AsyncCommands as _};
use sessionward_redis::{RedisStore, SweepConfig};

fn record(user: Option<&str>, at: Timestamp) -> SessionRecord {
    fixtures::record_lasting(user, at, Duration::from_secs(60), Duration::from_secs(3600))
}

/// Deletes every key whose name starts with `pattern_prefix` (SCAN, bounded).
async fn delete_keys(conn: &mut redis::aio::ConnectionManager, pattern_prefix: &str) -> usize {
    let pattern = format!("{pattern_prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    for _ in 0..100_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let n: usize = conn.del(&keys).await.expect("del");
            deleted += n;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    deleted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(url) = require_env("conformance", "REDIS_URL") else {
        return;
    };
    let client = redis::Client::open(url.as_str()).expect("REDIS_URL parses");
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2);
    let manager = tokio::time::timeout(
        Duration::from_secs(15),
        redis::aio::ConnectionManager::new_with_config(client, config),
    )
    .await
    .expect("connecting to REDIS_URL timed out")
    .unwrap_or_else(|e| panic!("cannot connect to REDIS_URL {url}: {e}"));
    // One namespace per case: a fresh, empty store each time, and nothing shared with other
    // runs on the same Redis.
    let run = unique("swtest");
    let n = AtomicUsize::new(0);
    let factory_manager = manager.clone();
    sessionward_conformance::run_all(|| {
        let ns = format!("{run}-{}", n.fetch_add(1, Ordering::Relaxed));
        let store = RedisStore::builder()
            .namespace(ns)
            .timeout(Duration::from_secs(5))
            .sweep(SweepConfig::disabled())
            .build_with(factory_manager.clone())
            .expect("store");
        async move { Arc::new(store) as Arc<dyn SessionStore> }
    })
    .await;
    let mut conn = manager;
    let deleted = delete_keys(&mut conn, &format!("{{{run}-")).await;
    eprintln!("conformance: removed {deleted} keys of this run");
}

/// A store on a server of the test's own, with no sweeper.
async fn own_store(server: &RedisServer, ns: &str) -> RedisStore {
    RedisStore::builder()
        .namespace(ns)
        .sweep(SweepConfig::disabled())
        .connect(&server.url())
        .await
        .expect("connect to the test's redis-server")
}

/// The calls per command since `before`, without the INFO calls that took the snapshots.
fn delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, &calls)| {
            let d = calls - before.get(name).copied().unwrap_or(0);
            (d > 0).then(|| (name.clone(), d))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_costs_one_command_and_save_one_script_call() {
    let Some(server) = RedisServer::start("load_costs_one_command") else {
        return;
    };
    let store = own_store(&server, "count").await;
    let t = SystemClock.now();
    let mut r = record(Some("alice"), t);
    r.data = SessionData::from_json(r#"{"cart":["a"],"theme":"dark"}"#).expect("json");
    store.create(&r).await.expect("create");
    // Warm the script cache, so that the counts below are steady-state.
    let mut c = ChangeSet::default();
    c.data.insert("n", json!(0));
    store.save(&r.key, Some(0), &c, t).await.expect("save");
    store.touch(&r.key, t).await.expect("touch");

    let before = command_calls(&server.raw("INFO commandstats"));
    for _ in 0..10 {
        let back = store.load(&r.key, t).await.expect("load").expect("live");
        assert_eq!(
            back.data.to_map().expect("map").get("theme"),
            Some(&json!("dark"))
        );
    }
    assert!(
        store
            .load(&SessionToken::generate().expect("rng").key(), t)
            .await
            .expect("load")
            .is_none()
    );
    let after = command_calls(&server.raw("INFO commandstats"));
    let loads = delta(&before, &after);
    assert_eq!(
        loads,
        [("hgetall".to_owned(), 11)].into_iter().collect(),
        "11 loads must be 11 HGETALLs and nothing else"
    );

    // A save is one EVALSHA (the commands it runs inside Redis are not round trips).
    let before = command_calls(&server.raw("INFO commandstats"));
    let mut c = ChangeSet::default();
    c.data.insert("n", json!(1));
    store.save(&r.key, Some(1), &c, t).await.expect("save");
    store
        .touch(&r.key, t + Duration::from_secs(1))
        .await
        .expect("touch");
    let after = command_calls(&server.raw("INFO commandstats"));
    let d = delta(&before, &after);
    assert_eq!(d.get("evalsha"), Some(&2), "{d:?}");
    assert!(
        !d.contains_key("eval") && !d.contains_key("script|load"),
        "{d:?}"
    );
    assert!(
        !d.contains_key("hgetall"),
        "a save must not read the record back: {d:?}"
    );

    // A save under a data limit measures only the keys it changes (the record keeps its data
    // size), and one that does not move the expiry leaves the TTL and the expiry index alone.
    let v = store
        .load(&r.key, t)
        .await
        .expect("load")
        .expect("live")
        .version;
    let before = command_calls(&server.raw("INFO commandstats"));
    let mut c = ChangeSet::default();
    c.data.insert("n", json!(2));
    c.data.remove("cart");
    c.data_limit = Some(1000);
    assert_eq!(
        store.save(&r.key, Some(v), &c, t).await.expect("save"),
        SaveOutcome::Saved { version: v + 1 }
    );
    let after = command_calls(&server.raw("INFO commandstats"));
    let d = delta(&before, &after);
    assert_eq!(d.get("evalsha"), Some(&1), "{d:?}");
    for cmd in ["hgetall", "hkeys", "zadd", "expire", "hincrby"] {
        assert!(!d.contains_key(cmd), "{cmd} in a limited data save: {d:?}");
    }
    // One that moves it rewrites both.
    let before = command_calls(&server.raw("INFO commandstats"));
    let c = ChangeSet {
        last_seen_at: Some(t + Duration::from_secs(5)),
        ..ChangeSet::default()
    };
    store
        .save(&r.key, None, &c, t + Duration::from_secs(5))
        .await
        .expect("save");
    let after = command_calls(&server.raw("INFO commandstats"));
    let d = delta(&before, &after);
    assert_eq!(
        (d.get("zadd"), d.get("expire")),
        (Some(&1), Some(&1)),
        "{d:?}"
    );
}

/// The data size a save checks the limit against, for `r` as it is stored now plus `c`.
async fn expected_size(
    store: &RedisStore,
    r: &SessionRecord,
    c: &ChangeSet,
    t: Timestamp,
) -> usize {
    let now = store.load(&r.key, t).await.expect("load").expect("live");
    now.data.apply(&c.data, None).expect("applies").len_bytes()
}

/// Saves `c` under a limit one byte short of the size it would give (refused, with that
/// size), then under the exact size (applied).
async fn refused_then_saved(store: &RedisStore, r: &SessionRecord, c: &ChangeSet, t: Timestamp) {
    let size = expected_size(store, r, c, t).await;
    let mut c = c.clone();
    c.data_limit = Some(size - 1);
    match store.save(&r.key, None, &c, t).await {
        Err(StoreError::Data(DataError::TooLarge { size: got, .. })) => assert_eq!(got, size),
        other => panic!("expected TooLarge at {size}, got {other:?}"),
    }
    c.data_limit = Some(size);
    assert!(matches!(
        store.save(&r.key, None, &c, t).await.expect("save"),
        SaveOutcome::Saved { .. }
    ));
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    assert_eq!(back.data.len_bytes(), size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_current_size_field_are_measured_from_their_data() {
    let Some(server) = RedisServer::start("size_field_upgrade") else {
        return;
    };
    let store = own_store(&server, "upgrade").await;
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let t = SystemClock.now();
    let mut r = record(Some("carol"), t);
    r.data = SessionData::from_json(r#"{"cart":["a","b"],"theme":"dark"}"#).expect("json");
    store.create(&r).await.expect("create");
    let rec = format!("{{upgrade}}:s:{}", r.key.to_hex());

    // A record of the previous layout (no `ds`) loads, and its first limited save measures
    // the data it holds.
    let _: () = conn.hdel(&rec, "ds").await.expect("hdel");
    assert_eq!(
        store
            .load(&r.key, t)
            .await
            .expect("load")
            .expect("live")
            .data,
        r.data
    );
    let mut c = ChangeSet::default();
    c.data.insert("n", json!(1));
    refused_then_saved(&store, &r, &c, t).await;
    let ds: Option<String> = conn.hget(&rec, "ds").await.expect("hget");
    assert!(ds.is_some(), "the save stores the size it measured");
    let before = command_calls(&server.raw("INFO commandstats"));
    let mut c = ChangeSet::default();
    c.data.insert("n", json!(2));
    c.data_limit = Some(10_000);
    store.save(&r.key, None, &c, t).await.expect("save");
    let d = delta(&before, &command_calls(&server.raw("INFO commandstats")));
    assert!(!d.contains_key("hgetall"), "{d:?}");

    // A writer that does not keep `ds` (an older release, during a rolling deploy) adds data
    // and bumps the version: the stale size is not trusted.
    let big = format!("\"{}\"", "x".repeat(300));
    let _: () = conn.hset(&rec, "d:big", &big).await.expect("hset");
    let _: () = conn.hincr(&rec, "v", 1).await.expect("hincrby");
    let mut c = ChangeSet::default();
    c.data.insert("theme", json!("light"));
    refused_then_saved(&store, &r, &c, t).await;
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    assert_eq!(
        back.data.to_map().expect("map").get("big"),
        Some(&json!("x".repeat(300)))
    );

    // Removals, a clear, keys set and removed again: the kept size follows every step.
    let mut c = ChangeSet::default();
    c.data.remove("big");
    c.data.insert("q\"\n", json!({"k": [1, 2]}));
    refused_then_saved(&store, &r, &c, t).await;
    let mut c = ChangeSet::default();
    c.data.remove("no-such-key");
    c.data.insert("n", json!(12_345));
    refused_then_saved(&store, &r, &c, t).await;
    let mut c = ChangeSet::default();
    c.data.clear();
    c.data.insert("only", json!(true));
    refused_then_saved(&store, &r, &c, t).await;
    let mut c = ChangeSet::default();
    c.data.remove("only");
    refused_then_saved(&store, &r, &c, t).await;
    let mut c = ChangeSet::default();
    c.data.insert("again", json!("x"));
    refused_then_saved(&store, &r, &c, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout_with_ttls() {
    let Some(server) = RedisServer::start("keys_follow_the_documented_layout") else {
        return;
    };
    let store = own_store(&server, "layout").await;
    let t = SystemClock.now();
    let r = record(Some("bob@example.com"), t);
    store.create(&r).await.expect("create");
    let anon = record(None, t);
    store.create(&anon).await.expect("create");

    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys: Vec<String> = conn.keys("*").await.expect("keys");
    keys.sort();
    let rec = format!("{{layout}}:s:{}", r.key.to_hex());
    let anon_rec = format!("{{layout}}:s:{}", anon.key.to_hex());
    assert!(keys.contains(&rec) && keys.contains(&anon_rec), "{keys:?}");
    assert!(keys.contains(&"{layout}:x".to_owned()), "{keys:?}");
    assert_eq!(
        keys.len(),
        4,
        "two records, the expiry index, one user index: {keys:?}"
    );
    // No key holds the user id in the clear, and every key has the namespace's hash tag.
    assert!(
        keys.iter()
            .all(|k| k.starts_with("{layout}:") && !k.contains("bob")),
        "{keys:?}"
    );
    let user_index = keys
        .iter()
        .find(|k| k.starts_with("{layout}:u:"))
        .expect("user index");
    let members: Vec<String> = conn.smembers(user_index).await.expect("smembers");
    assert_eq!(members, vec![r.key.to_hex()]);
    // Record TTL = expiry - now (60 s idle) + the default 60 s slack.
    let ttl: i64 = conn.ttl(&rec).await.expect("ttl");
    assert!((100..=120).contains(&ttl), "ttl {ttl}");
    // The expiry index holds the expiry of the caller's clock.
    let score: f64 = conn
        .zscore(
            "{layout}:x",
            r.key.to_hex() + ":" + user_index.rsplit(':').next().expect("digest"),
        )
        .await
        .expect("zscore");
    assert_eq!(score as i64, (t + Duration::from_secs(60)).unix());
    // A touch moves both.
    store
        .touch(&r.key, t + Duration::from_secs(30))
        .await
        .expect("touch");
    let score: f64 = conn
        .zscore(
            "{layout}:x",
            r.key.to_hex() + ":" + user_index.rsplit(':').next().expect("digest"),
        )
        .await
        .expect("zscore");
    assert_eq!(score as i64, (t + Duration::from_secs(90)).unix());
    // Deleting the signed-in record leaves no trace of it: record, index entry, expiry entry.
    assert!(store.delete(&r.key).await.expect("delete"));
    let mut keys: Vec<String> = conn.keys("*").await.expect("keys");
    keys.sort();
    assert_eq!(keys, vec![anon_rec, "{layout}:x".to_owned()]);
    let n: usize = conn.zcard("{layout}:x").await.expect("zcard");
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_trimmed_when_records_vanish_by_ttl() {
    let Some(server) = RedisServer::start("indexes_are_trimmed") else {
        return;
    };
    let store = RedisStore::builder()
        .namespace("ttl")
        .ttl_slack(Duration::ZERO)
        .sweep(SweepConfig::disabled())
        .connect(&server.url())
        .await
        .expect("connect");
    let t = SystemClock.now();
    let mut short = record(Some("carol"), t);
    short.absolute_expires_at = t + Duration::from_secs(1);
    let long = record(Some("carol"), t);
    store.create(&short).await.expect("create");
    store.create(&long).await.expect("create");
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // Wait (bounded) for Redis' TTL to remove the short record.
    let short_key = format!("{{ttl}}:s:{}", short.key.to_hex());
    let mut gone = false;
    for _ in 0..60 {
        let exists: bool = conn.exists(&short_key).await.expect("exists");
        if !exists {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "Redis did not expire the record within 6 s");
    assert_eq!(conn.zcard::<_, usize>("{ttl}:x").await.expect("zcard"), 2);
    // A record that vanished by TTL is not counted, but its index entries go.
    let later = t + Duration::from_secs(2);
    assert_eq!(store.delete_expired(later, 100).await.expect("sweep"), 0);
    assert_eq!(conn.zcard::<_, usize>("{ttl}:x").await.expect("zcard"), 1);
    let listed = store
        .list_by_user(&UserId::from("carol"), later)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.key).collect::<Vec<_>>(),
        vec![long.key]
    );
    let user_keys: Vec<String> = conn.keys("{ttl}:u:*").await.expect("keys");
    let members: Vec<String> = conn.smembers(&user_keys[0]).await.expect("smembers");
    assert_eq!(members, vec![long.key.to_hex()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_values_keep_their_json_exactly() {
    let Some(server) = RedisServer::start("data_values_keep_their_json") else {
        return;
    };
    let store = own_store(&server, "json").await;
    let t = SystemClock.now();
    let r = record(None, t);
    store.create(&r).await.expect("create");
    let mut c = ChangeSet::default();
    c.data.insert("empty_list", json!([]));
    c.data.insert("empty_obj", json!({}));
    c.data.insert("big", json!(9_007_199_254_740_993_u64));
    c.data.insert("float", json!(0.1));
    c.data.insert("unicode \"key\" é", json!("snow ☃"));
    store.save(&r.key, Some(0), &c, t).await.expect("save");
    let map = store
        .load(&r.key, t)
        .await
        .expect("load")
        .expect("live")
        .data
        .to_map()
        .expect("map");
    assert_eq!(map.get("empty_list"), Some(&json!([])));
    assert_eq!(map.get("empty_obj"), Some(&json!({})));
    assert_eq!(map.get("big"), Some(&json!(9_007_199_254_740_993_u64)));
    assert_eq!(map.get("float"), Some(&json!(0.1)));
    assert_eq!(map.get("unicode \"key\" é"), Some(&json!("snow ☃")));
    // clear removes every data key and nothing else.
    let mut c = ChangeSet::default();
    c.data.clear();
    c.data.insert("only", json!(true));
    store.save(&r.key, Some(1), &c, t).await.expect("save");
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    assert_eq!(back.data.as_json(), r#"{"only":true}"#);
    assert_eq!(back.roles, r.roles);
    assert_eq!(back.handle, r.handle);
    assert_eq!(back.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_namespace_and_unreachable_redis_are_errors() {
    let err = RedisStore::builder()
        .namespace("a}b")
        .connect("redis://127.0.0.1:1")
        .await
        .expect_err("namespace");
    assert!(err.to_string().contains("failed"), "{err}");
    let started = std::time::Instant::now();
    let err = RedisStore::builder()
        .connect_timeout(Duration::from_millis(200))
        .reconnect_retries(0)
        .connect("redis://127.0.0.1:1")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    eprintln!("unreachable: {err}");
    assert!(RedisStore::builder().connect("not a url").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_deletes_expired_records_and_stops_with_the_store() {
    let Some(server) = RedisServer::start("sweeper") else {
        return;
    };
    let clock = Arc::new(sessionward_core::TestClock::new(Timestamp::from_unix(
        1_000_000,
    )));
    let store = RedisStore::builder()
        .namespace("sweep")
        .sweep(SweepConfig::every(Duration::from_millis(50)).clock(clock.clone()))
        .connect(&server.url())
        .await
        .expect("connect");
    let status = store.sweeper();
    assert!(status.is_running());
    let r = record(Some("dan"), clock.now());
    store.create(&r).await.expect("create");
    clock.advance(Duration::from_secs(61));
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let rec = format!("{{sweep}}:s:{}", r.key.to_hex());
    let mut swept = false;
    for _ in 0..100 {
        if !conn.exists::<_, bool>(&rec).await.expect("exists") {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        swept,
        "the sweeper did not delete the expired record within 5 s"
    );
    drop(store);
    for _ in 0..100 {
        if !status.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!status.is_running(), "the sweeper outlived its store");
}

/// The size a limited save measures is exactly the length of the JSON object text the record
/// then loads as (the measure of `SessionData::apply`), whatever its keys and values hold: one
/// byte under it is refused with that size and changes nothing, the size itself is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_limit_measures_the_json_text_the_record_loads_as() {
    let Some(server) = RedisServer::start("data_limit_measure") else {
        return;
    };
    let store = own_store(&server, "limit").await;
    let t = SystemClock.now();
    let r = record(None, t);
    store.create(&r).await.expect("create");
    let mut steps = Vec::new();
    let mut c = ChangeSet::default();
    c.data.insert("plain", json!("x"));
    steps.push(c);
    let mut c = ChangeSet::default();
    c.data
        .insert("quote\"back\\slash", json!({"n": [1, 2.5, null]}));
    steps.push(c);
    let mut c = ChangeSet::default();
    c.data
        .insert("ctl\n\t\u{1}\u{1f}\u{7f}", json!("snow ☃ é \"q\""));
    steps.push(c);
    let mut c = ChangeSet::default();
    c.data.remove("plain");
    c.data.insert("ünï", json!(12_345_678_901_234_567_890_u64));
    steps.push(c);
    let mut c = ChangeSet::default();
    c.data.clear();
    c.data.insert("only", json!(true));
    steps.push(c);
    for (i, mut c) in steps.into_iter().enumerate() {
        let before = store.load(&r.key, t).await.expect("load").expect("live");
        let expected = before
            .data
            .apply(&c.data, None)
            .expect("applies")
            .len_bytes();
        c.data_limit = Some(expected - 1);
        match store.save(&r.key, Some(before.version), &c, t).await {
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
            store
                .save(&r.key, Some(before.version), &c, t)
                .await
                .expect("save"),
            SaveOutcome::Saved {
                version: before.version + 1
            },
            "step {i}"
        );
        let after = store.load(&r.key, t).await.expect("load").expect("live");
        assert_eq!(after.data.len_bytes(), expected, "step {i}");
    }
    // A save that changes no data key is not measured (as in `SessionData::apply`).
    let c = ChangeSet {
        last_seen_at: Some(t),
        data_limit: Some(1),
        ..ChangeSet::default()
    };
    assert!(matches!(
        store.save(&r.key, Some(5), &c, t).await.expect("save"),
        SaveOutcome::Saved { version: 6 }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_time_is_one_key_of_the_user_kept_a_day_and_loads_stay_one_command() {
    let Some(server) = RedisServer::start("the_change_time_is_one_key") else {
        return;
    };
    let store = own_store(&server, "epoch").await;
    let t = SystemClock.now();
    let user = UserId::from("erin");
    let r = record(Some("erin"), t);
    store.create(&r).await.expect("create");
    assert_eq!(
        store
            .set_roles_for_user(&user, &sessionward_core::RoleSet::empty(), t)
            .await
            .expect("set roles"),
        1
    );
    let mut conn = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = conn.keys("{epoch}:e:*").await.expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains("erin"), "{keys:?}");
    let stored: i64 = conn.get(&keys[0]).await.expect("get");
    assert_eq!(stored, t.unix());
    // Kept 24 h past the change plus the default 60 s slack.
    let ttl: i64 = conn.ttl(&keys[0]).await.expect("ttl");
    assert!((86_400..=86_460).contains(&ttl), "ttl {ttl}");
    // A change from a server whose clock is behind keeps the later time and the longer TTL.
    store
        .delete_by_user(&user, Some(&r.key), t - Duration::from_secs(3600))
        .await
        .expect("delete_by_user");
    let stored: i64 = conn.get(&keys[0]).await.expect("get");
    assert_eq!(stored, t.unix());
    let ttl: i64 = conn.ttl(&keys[0]).await.expect("ttl");
    assert!(ttl >= 86_390, "ttl {ttl}");
    // The spared session is current and stamped; loading it is still one HGETALL.
    let before = command_calls(&server.raw("INFO commandstats"));
    let back = store.load(&r.key, t).await.expect("load").expect("live");
    let d = delta(&before, &command_calls(&server.raw("INFO commandstats")));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d.get("hgetall"), Some(&1), "{d:?}");
    assert!(back.authorized_at >= t);
    assert!(back.roles.is_empty());
    // A sign-in decided before the change is refused, and leaves nothing behind.
    let mut late = record(Some("erin"), t - Duration::from_secs(1));
    late.authorized_at = t - Duration::from_secs(1);
    assert!(matches!(
        store.create(&late).await,
        Err(StoreError::AuthorizationChanged)
    ));
    let exists: bool = conn
        .exists(format!("{{epoch}}:s:{}", late.key.to_hex()))
        .await
        .expect("exists");
    assert!(!exists);
}
