//! MemoryStore: the conformance suite, and what is particular to the memory store (bounds,
//! the sweeper).

use std::sync::Arc;
use std::time::Duration;

use sessionward_conformance::fixtures;
use sessionward_core::{Clock as _, SessionRecord, SessionStore, StoreError, TestClock, Timestamp};
use sessionward_memory::{MemoryStore, PerUserLimit, SweepConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    sessionward_conformance::run_all(|| async {
        Arc::new(
            MemoryStore::builder()
                .sweep(SweepConfig::disabled())
                .build(),
        ) as Arc<dyn SessionStore>
    })
    .await;
}

fn record(user: Option<&str>, at: Timestamp) -> SessionRecord {
    fixtures::record_lasting(user, at, Duration::from_secs(60), Duration::from_secs(3600))
}

#[tokio::test]
async fn signed_in_bound_refuses_with_capacity_error() {
    let store = MemoryStore::builder()
        .max_sessions(3)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    for _ in 0..3 {
        store.create(&record(Some("ann"), t)).await.expect("room");
    }
    let err = store
        .create(&record(Some("ben"), t))
        .await
        .expect_err("full");
    assert!(
        matches!(err, StoreError::CapacityExceeded { limit: 3 }),
        "{err:?}"
    );
    assert!(err.is_capacity());
    assert_eq!(store.len(), 3);
    // Anonymous sessions have their own budget.
    store.create(&record(None, t)).await.expect("anonymous");
    assert_eq!(store.len(), 4);
    // Deleting one makes room again.
    let r = record(Some("ben"), t);
    assert!(store.create(&r).await.is_err());
    assert_eq!(
        store
            .delete_expired(t + Duration::from_secs(60), 10)
            .await
            .expect("sweep"),
        4
    );
    store.create(&r).await.expect("room after the sweep");
}

#[tokio::test]
async fn per_user_bound_evicts_the_oldest() {
    let store = MemoryStore::builder()
        .max_sessions_per_user(2, PerUserLimit::EvictOldest)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let first = record(Some("alice"), t);
    let second = record(Some("alice"), t + Duration::from_secs(1));
    let third = record(Some("alice"), t + Duration::from_secs(2));
    let bob = record(Some("bob"), t);
    for r in [&first, &second, &bob, &third] {
        store.create(r).await.expect("create");
    }
    let now = t + Duration::from_secs(2);
    assert!(
        store.load(&first.key, now).await.expect("load").is_none(),
        "oldest not evicted"
    );
    assert!(store.load(&second.key, now).await.expect("load").is_some());
    assert!(store.load(&third.key, now).await.expect("load").is_some());
    assert!(store.load(&bob.key, now).await.expect("load").is_some());
    assert_eq!(
        store
            .list_by_user(&"alice".into(), now)
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn per_user_bound_applies_when_a_sign_in_rotates_an_anonymous_session() {
    let store = MemoryStore::builder()
        .max_sessions_per_user(1, PerUserLimit::EvictOldest)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let first = record(Some("alice"), t);
    store.create(&first).await.expect("create");
    let anon = record(None, t);
    store.create(&anon).await.expect("create");
    let signed = record(Some("alice"), t + Duration::from_secs(1));
    let out = store
        .rotate(&anon.key, None, &signed, t)
        .await
        .expect("rotate");
    assert_eq!(out, sessionward_core::RotateOutcome::Rotated);
    assert!(
        store.load(&first.key, t).await.expect("load").is_none(),
        "bound not applied on rotate"
    );
    assert_eq!(
        store
            .list_by_user(&"alice".into(), t)
            .await
            .expect("list")
            .len(),
        1
    );
    // Refuse: the rotation fails and the anonymous session is left as it was.
    let store = MemoryStore::builder()
        .max_sessions_per_user(1, PerUserLimit::Refuse)
        .sweep(SweepConfig::disabled())
        .build();
    store.create(&first).await.expect("create");
    store.create(&anon).await.expect("create");
    let err = store
        .rotate(&anon.key, None, &signed, t)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StoreError::UserLimitReached { limit: 1 }),
        "{err:?}"
    );
    assert!(store.load(&anon.key, t).await.expect("load").is_some());
    assert!(store.load(&signed.key, t).await.expect("load").is_none());
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn per_user_bound_can_refuse() {
    let store = MemoryStore::builder()
        .max_sessions_per_user(1, PerUserLimit::Refuse)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let first = record(Some("alice"), t);
    store.create(&first).await.expect("create");
    let err = store
        .create(&record(Some("alice"), t))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, StoreError::UserLimitReached { limit: 1 }),
        "{err:?}"
    );
    assert!(store.load(&first.key, t).await.expect("load").is_some());
    // An expired session does not count against the bound.
    let later = t + Duration::from_secs(61);
    store
        .create(&record(Some("alice"), later))
        .await
        .expect("room after expiry");
}

#[tokio::test(start_paused = true)]
async fn sweeper_deletes_expired_and_stops_when_dropped() {
    let clock = TestClock::new(Timestamp::from_unix(1_000_000));
    let store = MemoryStore::builder()
        .sweep(SweepConfig::every(Duration::from_secs(60)).clock(Arc::new(clock.clone())))
        .build();
    let status = store.sweeper();
    assert!(status.is_running());
    let live = record(None, clock.now());
    store
        .create(&record(None, clock.now()))
        .await
        .expect("create");
    store
        .create(&record(Some("alice"), clock.now()))
        .await
        .expect("create");
    // Idle timeout is 60 s; move the session clock past it but keep `live` alive.
    clock.advance(Duration::from_secs(61));
    let mut live = live;
    live.created_at = clock.now();
    live.last_seen_at = clock.now();
    store.create(&live).await.expect("create");
    assert_eq!(store.len(), 3);
    // Let the sweeper's interval elapse (paused Tokio time advances on its own when idle).
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        store.len(),
        1,
        "sweeper did not delete the expired sessions"
    );
    assert!(
        store
            .load(&live.key, clock.now())
            .await
            .expect("load")
            .is_some()
    );
    drop(store);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !status.is_running(),
        "sweeper still running after the store was dropped"
    );
}

#[test]
fn built_outside_a_runtime_has_no_sweeper() {
    let store = MemoryStore::new();
    assert!(!store.sweeper().is_running());
}

/// The suite must catch a broken store: a wrapper that lets `save` recreate deleted records
/// and ignores `delete_by_user`'s exception fails exactly those cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_catches_a_broken_store() {
    use sessionward_conformance::{Call, ForwardingStore, Hook};

    /// Breaks the store it forwards to: `save` "upserts" a record that is gone (the classic
    /// bug), and `delete_by_user` ignores its exception.
    #[derive(Debug)]
    struct Broken(MemoryStore);

    #[sessionward_core::async_trait]
    impl Hook for Broken {
        async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
            match call {
                Call::Save { key, now, .. } if self.0.load(key, now).await?.is_none() => {
                    let mut r = record(None, now);
                    r.key = *key;
                    self.0.create(&r).await?;
                }
                Call::DeleteByUser {
                    user,
                    except: Some(_),
                    now,
                } => {
                    self.0.delete_by_user(user, None, now).await?;
                }
                _ => {}
            }
            Ok(())
        }
    }

    let report = sessionward_conformance::run_cases(sessionward_conformance::CASES, || async {
        let inner = MemoryStore::builder()
            .sweep(SweepConfig::disabled())
            .build();
        Arc::new(ForwardingStore::new(inner.clone(), Broken(inner))) as Arc<dyn SessionStore>
    })
    .await;
    let failed: Vec<_> = report.failed.iter().map(|(name, _)| *name).collect();
    assert!(sessionward_conformance::CASES.len() >= 30);
    for expected in [
        "save_after_delete_is_gone_and_recreates_nothing",
        "save_after_expiry_is_gone",
        "save_racing_delete_never_resurrects",
        "delete_by_user_keeps_the_excepted_key",
    ] {
        assert!(
            failed.contains(&expected),
            "{expected} did not fail; failed: {failed:?}"
        );
    }
}

fn lasting(user: Option<&str>, at: Timestamp) -> SessionRecord {
    fixtures::record_lasting(
        user,
        at,
        Duration::from_secs(3600),
        Duration::from_secs(86_400 * 30),
    )
}

#[tokio::test]
async fn a_users_change_time_is_forgotten_only_as_the_contract_allows() {
    let store = MemoryStore::builder()
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let hour = Duration::from_secs(3600);
    let stale = |at: Timestamp| {
        let mut r = lasting(Some("nora"), at);
        r.authorized_at = t - Duration::from_secs(1);
        r
    };
    // A session of nora's that lives through the whole test (touched every hour).
    let kept = lasting(Some("nora"), t);
    store.create(&kept).await.expect("create");
    store
        .set_roles_for_user(&"nora".into(), &sessionward_core::RoleSet::empty(), t)
        .await
        .expect("set roles");
    for half_hours in 1..=50 {
        let now = t + hour * half_hours / 2;
        assert!(store.touch(&kept.key, now).await.expect("touch"));
        store.delete_expired(now, 100).await.expect("sweep");
    }
    // 25 hours on, but nora still has a session: the change is remembered.
    let now = t + hour * 25;
    let out = store.create(&stale(now)).await;
    assert!(
        matches!(out, Err(StoreError::AuthorizationChanged)),
        "{out:?}"
    );
    // Her last session ends; the change is remembered for 24 hours after it, not less.
    store.delete(&kept.key).await.expect("delete");
    let out = store.create(&stale(now)).await;
    assert!(
        matches!(out, Err(StoreError::AuthorizationChanged)),
        "forgotten while sessions were just gone: {out:?}"
    );
    // Without sessions and 24 h after the change, the sweeper forgets it (the contract's
    // bound: no sign-in is in flight that long).
    store.delete_expired(now, 100).await.expect("sweep");
    store
        .create(&stale(now))
        .await
        .expect("the change is forgotten");
}

#[tokio::test]
async fn a_change_time_without_sessions_is_kept_for_a_day() {
    let store = MemoryStore::builder()
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    store
        .delete_by_user(&"olga".into(), None, t)
        .await
        .expect("disable");
    let in_flight = |now: Timestamp| {
        let mut r = lasting(Some("olga"), now);
        r.authorized_at = t - Duration::from_secs(1);
        r
    };
    let almost = t + Duration::from_secs(86_399);
    store.delete_expired(almost, 100).await.expect("sweep");
    let out = store.create(&in_flight(almost)).await;
    assert!(
        matches!(out, Err(StoreError::AuthorizationChanged)),
        "{out:?}"
    );
    let day = t + Duration::from_secs(86_400);
    store.delete_expired(day, 100).await.expect("sweep");
    store.create(&in_flight(day)).await.expect("forgotten");
}

#[tokio::test]
async fn an_anonymous_flood_is_bounded_and_never_refuses_a_sign_in() {
    // 50 anonymous sessions per shard on average: the per-shard eviction is then close to
    // least recently used.
    const BOUND: usize = 3_200;
    let store = MemoryStore::builder()
        .max_anonymous_sessions(BOUND)
        .max_sessions(10)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    // A visitor who keeps browsing during the flood (one new session a second).
    let visitor = lasting(None, t);
    store.create(&visitor).await.expect("create");
    for i in 0..30_000u64 {
        let now = t + Duration::from_secs(i);
        store
            .create(&lasting(None, now))
            .await
            .expect("never refused");
        if i % 10 == 0 {
            assert!(
                store.touch(&visitor.key, now).await.expect("touch"),
                "the recently used visitor was evicted at {i}"
            );
        }
        assert!(store.anonymous_len() <= BOUND, "{}", store.anonymous_len());
    }
    assert_eq!(store.anonymous_len(), BOUND);
    let now = t + Duration::from_secs(30_000);
    // A sign-in by rotation moves the visitor to the signed-in budget.
    let signed = lasting(Some("pia"), now);
    let out = store
        .rotate(&visitor.key, None, &signed, now)
        .await
        .expect("sign-in");
    assert_eq!(out, sessionward_core::RotateOutcome::Rotated);
    assert_eq!(store.anonymous_len(), BOUND - 1);
    assert_eq!(store.len(), BOUND);
    // New sign-ins are served up to the signed-in bound, whatever the flood did.
    for _ in 0..9 {
        store
            .create(&lasting(Some("quin"), now))
            .await
            .expect("sign-in");
    }
    let err = store
        .create(&lasting(Some("rosa"), now))
        .await
        .expect_err("the signed-in bound holds");
    assert!(matches!(err, StoreError::CapacityExceeded { limit: 10 }));
    // A sign-in refused by the signed-in bound leaves its anonymous session in place.
    let anon = lasting(None, now);
    store.create(&anon).await.expect("anonymous");
    let err = store
        .rotate(&anon.key, None, &lasting(Some("rosa"), now), now)
        .await
        .expect_err("full");
    assert!(matches!(err, StoreError::CapacityExceeded { limit: 10 }));
    assert!(store.load(&anon.key, now).await.expect("load").is_some());
    assert_eq!(store.anonymous_len(), BOUND);
    // Signing out to an anonymous session moves it back (and evicts to make room).
    let back = lasting(None, now);
    store
        .rotate(&signed.key, None, &back, now)
        .await
        .expect("rotate");
    assert_eq!(store.anonymous_len(), BOUND);
    assert_eq!(store.len(), BOUND + 9);
    store
        .create(&lasting(Some("rosa"), now))
        .await
        .expect("room again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_anonymous_flood_stays_near_its_bound() {
    let store = MemoryStore::builder()
        .max_anonymous_sessions(64)
        .max_sessions(4)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                store
                    .create(&lasting(None, t))
                    .await
                    .expect("never refused");
            }
        }));
    }
    for task in tasks {
        task.await.expect("flood");
    }
    // At rest the budget holds exactly (in flight, by at most the concurrent creates).
    assert!(store.anonymous_len() <= 64, "{}", store.anonymous_len());
    for _ in 0..4 {
        store
            .create(&lasting(Some("sam"), t))
            .await
            .expect("sign-in");
    }
}
