//! RedisStore in cluster mode, on a Redis Cluster of each test's own (three primaries, three
//! replicas): the conformance suite, the spread of sessions over the primaries, a failover and
//! a resharding under load.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::{raw_command, unique};
use serde_json::json;
use sessionward_conformance::fixtures;
use sessionward_core::{
    ChangeSet, Clock as _, SaveOutcome, SessionRecord, SessionStore, StoreError, SystemClock,
    Timestamp,
};
use sessionward_redis::redis::{self, AsyncCommands as _};
use sessionward_redis::{RedisStore, SweepConfig};

fn record(user: &str, at: Timestamp) -> SessionRecord {
    fixtures::record_lasting(
        Some(user),
        at,
        Duration::from_secs(600),
        Duration::from_secs(3600),
    )
}

async fn store(cluster: &RedisCluster, ns: &str, timeout: Duration) -> RedisStore {
    tokio::time::timeout(
        Duration::from_secs(30),
        RedisStore::builder()
            .namespace(ns)
            .timeout(timeout)
            .sweep(SweepConfig::disabled())
            .connect_cluster(cluster.seeds()),
    )
    .await
    .expect("connecting to the cluster timed out")
    .expect("connect to the cluster")
}

/// A plain connection to one node (not cluster-aware), for looking at what it holds.
async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to a node")
}

/// The session record keys a node holds for namespace `ns`.
async fn records_on(port: u16, ns: &str) -> Vec<String> {
    let mut c = node(port).await;
    c.keys(format!("{{{ns}:*}}:s:*")).await.expect("keys")
}

/// Waits (bounded) until every primary's replica has acknowledged the whole replication stream
/// the primary had produced when asked: then every write made before this call survives the
/// primary's death. (A `WAIT` on a fresh connection would not do: it waits only for that
/// connection's own writes, which are none, so it returns at once; a session then lost with
/// its primary used to make this test flaky.)
async fn wait_replicated(cluster: &RedisCluster) {
    let field = |info: &str, name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    for port in cluster.primaries() {
        let info = raw_command(port, "INFO replication").expect("INFO replication");
        let written = field(&info, "master_repl_offset").expect("master_repl_offset");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The replicas' acknowledged offsets (`slave0:ip=..,port=..,state=online,offset=N`),
            // which they report every second.
            let info = raw_command(port, "INFO replication").expect("INFO replication");
            let acked = info
                .lines()
                .filter(|l| l.starts_with("slave"))
                .filter_map(|l| l.split(',').find_map(|kv| kv.strip_prefix("offset=")))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .max();
            if acked.is_some_and(|a| a >= written) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "primary {port}: its replica did not acknowledge offset {written} ({acked:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_conformance() {
    let Some(cluster) = RedisCluster::start("cluster_conformance") else {
        return;
    };
    let client = redis::cluster::ClusterClientBuilder::new(cluster.seeds())
        .response_timeout(Duration::from_secs(5))
        .build()
        .expect("cluster client");
    let conn = client
        .get_async_connection()
        .await
        .expect("connect to the cluster");
    let run = unique("swc");
    let n = AtomicUsize::new(0);
    sessionward_conformance::run_all(|| {
        let ns = format!("{run}-{}", n.fetch_add(1, Ordering::Relaxed));
        let store = RedisStore::builder()
            .namespace(ns)
            .timeout(Duration::from_secs(5))
            .sweep(SweepConfig::disabled())
            .build_cluster_with(conn.clone())
            .expect("store");
        assert!(store.is_cluster());
        async move { Arc::new(store) as Arc<dyn SessionStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_every_primary_and_loads_are_one_command() {
    let Some(cluster) = RedisCluster::start("sessions_spread") else {
        return;
    };
    let store = store(&cluster, "spread", Duration::from_secs(5)).await;
    let t = SystemClock.now();
    let mut keys = Vec::new();
    for i in 0..1000 {
        let r = record(&format!("user-{}", i % 50), t);
        store.create(&r).await.expect("create");
        keys.push(r.key);
    }
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let mut total = 0;
    for &p in &primaries {
        let n = records_on(p, "spread").await.len();
        eprintln!("primary {p}: {n} of 1000 session records");
        assert!(n >= 200, "primary {p} holds {n} of 1000 sessions (< 20%)");
        total += n;
    }
    assert_eq!(total, 1000);
    // A load is one HGETALL on the one primary that holds the record.
    let stats = |port: u16| {
        let info = raw_command(port, "INFO commandstats").expect("info");
        common::command_calls(&info)
    };
    let before: Vec<_> = primaries.iter().map(|&p| stats(p)).collect();
    let back = store.load(&keys[7], t).await.expect("load").expect("live");
    assert_eq!(back.key, keys[7]);
    let mut calls = HashMap::new();
    for (i, &p) in primaries.iter().enumerate() {
        for (name, n) in stats(p) {
            let d = n - before[i].get(&name).copied().unwrap_or(0);
            if d > 0 && name != "info" {
                *calls.entry(name).or_insert(0) += d;
            }
        }
    }
    assert_eq!(
        calls,
        [("hgetall".to_owned(), 1)].into_iter().collect(),
        "one load must be one HGETALL"
    );
    // The per-user operations reach sessions on every slot.
    let user = sessionward_core::UserId::from("user-3");
    assert_eq!(store.list_by_user(&user, t).await.expect("list").len(), 20);
    assert_eq!(
        store
            .delete_by_user(&user, None, t)
            .await
            .expect("delete_by_user"),
        20
    );
    assert!(store.list_by_user(&user, t).await.expect("list").is_empty());
    // The sweeper's delete_expired visits every bucket.
    let later = t + Duration::from_secs(601);
    let mut swept = 0;
    for _ in 0..10 {
        let n = store.delete_expired(later, 1000).await.expect("sweep");
        swept += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(swept, 980);
    for &p in &primaries {
        assert!(records_on(p, "spread").await.is_empty());
    }
}

/// What a request saw during a fault.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    errors: usize,
    wrong: Vec<String>,
}

/// Loads `r` and checks the answer: the record as written, or an error; never "no session"
/// and never another record.
async fn check_load(store: &RedisStore, r: &SessionRecord, now: Timestamp, tally: &mut Tally) {
    match store.load(&r.key, now).await {
        Ok(Some(back)) if back.key == r.key && back.user == r.user => tally.ok += 1,
        Ok(Some(_)) => tally.wrong.push("another record".into()),
        Ok(None) => tally.wrong.push("a live session loaded as absent".into()),
        Err(_) => tally.errors += 1,
    }
}

// The store rebuilds its cluster connection when the cluster fails under it (see
// `ClusterConn` in src/cluster.rs): without that, redis-rs's client could keep its stale slot
// map, naming the dead primary, for longer than the 30 s this test allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_fails_closed_then_replicated_sessions_load() {
    let Some(mut cluster) = RedisCluster::start("a_failover_fails_closed") else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let store = store(&cluster, "failover", timeout).await;
    let t = SystemClock.now();
    let mut sessions = Vec::new();
    for i in 0..300 {
        let r = record(&format!("u{}", i % 30), t);
        store.create(&r).await.expect("create");
        sessions.push(r);
    }
    wait_replicated(&cluster).await;
    let victim = cluster.primaries()[0];
    let held: std::collections::HashSet<String> =
        records_on(victim, "failover").await.into_iter().collect();
    let on_victim: Vec<&SessionRecord> = sessions
        .iter()
        .filter(|r| held.iter().any(|k| k.ends_with(&r.key.to_hex())))
        .collect();
    assert!(on_victim.len() >= 30, "{} on the victim", on_victim.len());
    cluster.kill(victim);
    let killed = Instant::now();

    // While the replica is not promoted: every request for the victim's slots fails within
    // the timeout (or, once promoted, answers right); none is let through as absent.
    let mut tally = Tally::default();
    let mut tasks = Vec::new();
    for r in on_victim.iter().take(5) {
        let (store, r) = (store.clone(), (*r).clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut tally = Tally::default();
            check_load(&store, &r, t, &mut tally).await;
            let touched = store.touch(&r.key, t).await;
            (tally, started.elapsed(), touched)
        }));
    }
    for task in tasks {
        let (one, took, touched) = task.await.expect("task");
        assert!(
            took < timeout * 2 + Duration::from_millis(500),
            "a request took {took:?}"
        );
        assert!(
            !matches!(touched, Ok(false)),
            "a live session touched as gone"
        );
        tally.ok += one.ok;
        tally.errors += one.errors;
        tally.wrong.extend(one.wrong);
    }
    assert!(tally.wrong.is_empty(), "{:?}", tally.wrong);
    assert!(tally.errors > 0, "the failure was never seen: {tally:?}");
    eprintln!("during the failover: {tally:?}");

    // The replica takes over (every node agrees the victim failed and three primaries serve
    // all slots); the store finds the new primary by itself.
    assert!(
        cluster.wait_promoted(victim, Duration::from_secs(60)),
        "the replica was not promoted in time"
    );
    let promoted = killed.elapsed();
    let probe = on_victim[0];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed_probes = 0;
    loop {
        match store.load(&probe.key, t).await {
            Ok(Some(back)) => {
                assert_eq!(back.key, probe.key);
                break;
            }
            Ok(None) => panic!("a replicated session loaded as absent after the promotion"),
            Err(_) => failed_probes += 1,
        }
        assert!(
            Instant::now() < deadline,
            "the store never reached the new primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "promotion agreed {promoted:?} after the kill; the store served the new primary after \
         {failed_probes} failed probes, {:?} after the kill",
        killed.elapsed()
    );
    let mut after = Tally::default();
    for r in &sessions {
        check_load(&store, r, t, &mut after).await;
    }
    assert!(after.wrong.is_empty() && after.errors == 0, "{after:?}");
    assert_eq!(after.ok, sessions.len());
    // And it keeps working for writes.
    let fresh = record("after-failover", t);
    store
        .create(&fresh)
        .await
        .expect("create after the failover");
    let mut change = ChangeSet::default();
    change.data.insert("k", json!(1));
    assert!(matches!(
        store.save(&fresh.key, None, &change, t).await,
        Ok(SaveOutcome::Saved { .. })
    ));
}

/// Sends a command to one node.
async fn on_node<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> T {
    let mut c = node(port).await;
    cmd.query_async(&mut c).await.expect("node command")
}

/// Moves slot `slot` from `from` to `to` by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE key
/// by key, SETSLOT NODE on every primary).
async fn migrate_slot(cluster: &RedisCluster, slot: u16, from: u16, to: u16) {
    let (from_id, to_id) = (cluster.id_of(from), cluster.id_of(to));
    let setslot = |state: &str, id: &str| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .to_owned()
    };
    let _: () = on_node(to, &setslot("IMPORTING", &from_id)).await;
    let _: () = on_node(from, &setslot("MIGRATING", &to_id)).await;
    for _ in 0..100_000 {
        let keys: Vec<String> = on_node(
            from,
            redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(2),
        )
        .await;
        if keys.is_empty() {
            break;
        }
        let _: redis::Value = on_node(
            from,
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys),
        )
        .await;
        // Leave requests time to meet the half-moved slot (ASK, TRYAGAIN).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for p in cluster.primaries() {
        let _: () = on_node(p, &setslot("NODE", &to_id)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_under_load_gives_no_wrong_answer() {
    let Some(cluster) = RedisCluster::start("a_resharding_under_load") else {
        return;
    };
    let store = store(&cluster, "reshard", Duration::from_secs(2)).await;
    let t = SystemClock.now();
    let mut sessions = Vec::new();
    for i in 0..400 {
        let r = record(&format!("u{}", i % 20), t);
        store.create(&r).await.expect("create");
        sessions.push(r);
    }
    let primaries = cluster.primaries();
    let (from, to) = (primaries[0], primaries[1]);
    // The slots of the buckets that hold sessions on `from`.
    let mut slots = std::collections::BTreeSet::new();
    for k in records_on(from, "reshard").await {
        let slot: u16 = on_node(from, redis::cmd("CLUSTER").arg("KEYSLOT").arg(&k)).await;
        slots.insert(slot);
    }
    let slots: Vec<u16> = slots.into_iter().take(4).collect();
    assert!(!slots.is_empty());

    let sessions = Arc::new(sessions);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (store, sessions, stop) = (store.clone(), sessions.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let started = Instant::now();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let r = &sessions[i % sessions.len()];
                check_load(&store, r, t, &mut tally).await;
                if i % 7 == 0 {
                    let mut change = ChangeSet::default();
                    change.data.insert("n", json!(i));
                    match store.save(&r.key, None, &change, t).await {
                        Ok(SaveOutcome::Saved { .. }) => tally.ok += 1,
                        Ok(other) => tally.wrong.push(format!("save answered {other:?}")),
                        Err(_) => tally.errors += 1,
                    }
                }
                if i % 11 == 0 {
                    let fresh = record("fresh", t);
                    match store.create(&fresh).await {
                        Ok(()) => check_load(&store, &fresh, t, &mut tally).await,
                        Err(StoreError::Collision) => tally.wrong.push("collision".into()),
                        Err(_) => tally.errors += 1,
                    }
                }
                i += 2;
            }
            tally
        }));
    }
    for &slot in &slots {
        migrate_slot(&cluster, slot, from, to).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for w in workers {
        let one = w.await.expect("worker");
        tally.ok += one.ok;
        tally.errors += one.errors;
        tally.wrong.extend(one.wrong);
    }
    eprintln!("during the resharding of slots {slots:?}: {tally:?}");
    assert!(tally.wrong.is_empty(), "{:?}", tally.wrong);
    assert!(tally.ok > 0);
    // The slots moved, and every session still loads, with the per-user index intact.
    for &slot in &slots {
        let n: i64 = on_node(to, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot)).await;
        assert!(n > 0, "slot {slot} holds nothing on its new primary");
        let n: i64 = on_node(from, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot)).await;
        assert_eq!(n, 0, "slot {slot} left keys behind");
    }
    let mut after = Tally::default();
    for r in sessions.iter() {
        check_load(&store, r, t, &mut after).await;
    }
    assert!(after.wrong.is_empty() && after.errors == 0, "{after:?}");
    // The requests did meet the moving slots: the old primary redirected some.
    let redirects = |port: u16, what: &str| -> u64 {
        raw_command(port, "INFO errorstats")
            .expect("info")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("errorstat_{what}:count=")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let (moved, ask, tryagain) = (
        redirects(from, "MOVED"),
        redirects(from, "ASK"),
        redirects(from, "TRYAGAIN") + redirects(to, "TRYAGAIN"),
    );
    eprintln!("redirects: MOVED {moved}, ASK {ask}, TRYAGAIN {tryagain}");
    assert!(
        moved > 0,
        "no request was redirected: the test did not reshard under load"
    );
    let user = sessionward_core::UserId::from("u3");
    assert_eq!(store.list_by_user(&user, t).await.expect("list").len(), 20);
}
