//! The store's internal sets: the per-user pairs and the shared profiles are left with what the
//! stored sessions need, whatever removed the others.

use super::*;
use sessionward_conformance::fixtures;

fn store() -> MemoryStore {
    MemoryStore::builder()
        .sweep(SweepConfig::disabled())
        .build()
}

fn pairs(store: &MemoryStore) -> usize {
    store.inner.users.iter().map(|u| u.lock().pairs.len()).sum()
}

fn profiles(store: &MemoryStore) -> usize {
    store
        .inner
        .profiles
        .shards
        .iter()
        .map(|s| s.lock().len())
        .sum()
}

fn record(user: Option<&str>, agent: &str, at: Timestamp) -> SessionRecord {
    let mut r =
        fixtures::record_lasting(user, at, Duration::from_secs(60), Duration::from_secs(3600));
    r.user_agent = Some(agent.to_owned());
    r
}

#[tokio::test]
async fn sessions_share_a_profile_and_the_last_one_out_removes_it() {
    let store = store();
    let t = Timestamp::from_unix(1_000_000);
    let a = record(Some("ann"), "Firefox", t);
    let b = record(Some("ben"), "Firefox", t);
    let c = record(None, "Chrome", t);
    for r in [&a, &b, &c] {
        store.create(r).await.expect("create");
    }
    assert_eq!(profiles(&store), 2);
    assert_eq!(pairs(&store), 2);
    let loaded = store.load(&a.key, t).await.expect("load").expect("live");
    assert_eq!(loaded.user_agent.as_deref(), Some("Firefox"));
    assert_eq!(loaded.idle_timeout, Duration::from_secs(60));

    // A new idle timeout is another profile; the old one stays while `b` holds it.
    let change = ChangeSet {
        idle_timeout: Some(Duration::from_secs(120)),
        ..ChangeSet::default()
    };
    store.save(&a.key, None, &change, t).await.expect("save");
    assert_eq!(profiles(&store), 3);
    let loaded = store.load(&a.key, t).await.expect("load").expect("live");
    assert_eq!(loaded.idle_timeout, Duration::from_secs(120));
    assert_eq!(loaded.user_agent.as_deref(), Some("Firefox"));

    assert!(store.delete(&b.key).await.expect("delete"));
    assert_eq!(profiles(&store), 2, "ben's profile was his alone now");
    assert_eq!(pairs(&store), 1);
    assert_eq!(
        store
            .delete_by_user(&UserId::from("ann"), None, t)
            .await
            .expect("by user"),
        1
    );
    assert_eq!(pairs(&store), 0);
    // The sweeper takes the anonymous one, and with it the last profile.
    assert_eq!(
        store
            .delete_expired(t + Duration::from_secs(60), 100)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(profiles(&store), 0);
    assert!(store.is_empty());
}

#[tokio::test]
async fn the_recent_profiles_share_without_hashing_and_hold_nothing_alive() {
    let store = store();
    let t = Timestamp::from_unix(1_000_000);
    // Two user agents of the same length share a recent slot: each lookup compares the whole
    // profile, so neither takes the other's.
    let agents = ["Firefox/1", "Chrome/22"];
    let mut keys = Vec::new();
    for i in 0..6 {
        let r = record(Some(&format!("u{i}")), agents[i % 2], t);
        store.create(&r).await.expect("create");
        keys.push(r.key);
    }
    assert_eq!(profiles(&store), 2);
    let held = |key: &SessionKey| {
        let shard = store.inner.shard(key).lock();
        Arc::clone(&shard.find(key).expect("stored").profile)
    };
    for (i, key) in keys.iter().enumerate() {
        let loaded = store.load(key, t).await.expect("load").expect("live");
        assert_eq!(loaded.user_agent.as_deref(), Some(agents[i % 2]));
        assert!(
            Arc::ptr_eq(&held(key), &held(&keys[i % 2])),
            "one copy each"
        );
    }
    // Same user agent, other roles: another profile, whatever the slot remembers.
    let mut admin = record(Some("root"), "Firefox/1", t);
    admin.roles = RoleSet::from(["admin"]);
    store.create(&admin).await.expect("create");
    assert_eq!(profiles(&store), 3);
    let loaded = store
        .load(&admin.key, t)
        .await
        .expect("load")
        .expect("live");
    assert_eq!(loaded.roles, RoleSet::from(["admin"]));
    // The slots keep no profile in the set once its sessions are gone.
    for key in keys.iter().chain([&admin.key]) {
        assert!(store.delete(key).await.expect("delete"));
    }
    assert_eq!(profiles(&store), 0);
    // And a profile made again after that is a new one in the set, found as before.
    let again = record(Some("u0"), "Firefox/1", t);
    store.create(&again).await.expect("create");
    assert_eq!(profiles(&store), 1);
}

#[tokio::test]
async fn rotations_and_evictions_leave_only_what_is_stored() {
    let store = MemoryStore::builder()
        .max_anonymous_sessions(4)
        .max_sessions_per_user(2, PerUserLimit::EvictOldest)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    // An anonymous flood of distinct user agents: the evicted sessions' profiles go with them.
    for i in 0..50 {
        store
            .create(&record(None, &format!("bot-{i}"), t))
            .await
            .expect("anonymous");
    }
    assert_eq!(store.anonymous_len(), 4);
    assert_eq!(profiles(&store), 4);
    // Sign-ins rotate anonymous sessions; the per-user bound evicts the oldest.
    let mut keys = Vec::new();
    for i in 0..3 {
        let anon = record(None, "Safari", t);
        store.create(&anon).await.expect("anonymous");
        let signed = record(Some("cat"), "Safari", t + Duration::from_secs(i));
        let outcome = store
            .rotate(&anon.key, None, &signed, t + Duration::from_secs(i))
            .await
            .expect("rotate");
        assert_eq!(outcome, RotateOutcome::Rotated);
        keys.push(signed.key);
    }
    let cat = UserId::from("cat");
    let listed = store
        .list_by_user(&cat, t + Duration::from_secs(3))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "the per-user bound kept two");
    assert_eq!(pairs(&store), 2);
    // Rotating a signed-in session to a new key moves its pair.
    let next = record(Some("cat"), "Safari", t + Duration::from_secs(4));
    store
        .rotate(&keys[2], None, &next, t + Duration::from_secs(4))
        .await
        .expect("rotate");
    assert_eq!(pairs(&store), 2);
    assert_eq!(
        store
            .delete_by_user(&cat, None, t + Duration::from_secs(5))
            .await
            .expect("by user"),
        2
    );
    assert_eq!(pairs(&store), 0);
    store
        .delete_expired(t + Duration::from_secs(3600), 1000)
        .await
        .expect("sweep");
    assert!(store.is_empty());
    assert_eq!(profiles(&store), 0);
}

#[tokio::test]
async fn equal_role_sets_are_kept_once_and_a_role_change_moves_the_users_sessions() {
    let store = store();
    let t = Timestamp::from_unix(1_000_000);
    // Each sign-in brings its own allocation of the same roles, as `login(user, ["user"])`
    // does; the store keeps one.
    let mut a = record(Some("ann"), "Firefox", t);
    let mut b = record(Some("ben"), "Firefox", t);
    a.roles = RoleSet::from(["user"]);
    b.roles = RoleSet::from(["user"]);
    let mut c = record(Some("cat"), "Firefox", t);
    c.roles = RoleSet::from(["admin", "user"]);
    for r in [&a, &b, &c] {
        store.create(r).await.expect("create");
    }
    assert_eq!(
        profiles(&store),
        2,
        "ann and ben share one profile, cat has hers"
    );
    let shared = |k: &SessionKey| {
        store
            .inner
            .shard(k)
            .lock()
            .find_mut(k)
            .map(|e| Arc::clone(&e.profile))
    };
    let (pa, pb) = (shared(&a.key).expect("ann"), shared(&b.key).expect("ben"));
    assert!(Arc::ptr_eq(&pa, &pb));
    drop((pa, pb));

    // Ben becomes an admin: his session moves to cat's profile, ann keeps the old one alone.
    let admin = RoleSet::from(["user", "admin"]);
    let changed = store
        .set_roles_for_user(&UserId::from("ben"), &admin, t)
        .await
        .expect("set roles");
    assert_eq!(changed, 1);
    assert_eq!(profiles(&store), 2);
    let ben = store.load(&b.key, t).await.expect("load").expect("live");
    assert_eq!(ben.roles, admin);
    assert_eq!(ben.user_agent.as_deref(), Some("Firefox"));
    let ann = store.load(&a.key, t).await.expect("load").expect("live");
    assert_eq!(ann.roles, RoleSet::from(["user"]));
    // Ann signs out everywhere: her profile, now hers alone, goes with her session.
    store
        .delete_by_user(&UserId::from("ann"), None, t)
        .await
        .expect("by user");
    assert_eq!(profiles(&store), 1);
}

#[test]
fn the_entry_fits_a_144_byte_chunk() {
    // glibc hands out 144 bytes for up to 136; one more byte would cost a 160-byte chunk.
    assert!(std::mem::size_of::<Entry>() <= 136);
}

#[tokio::test]
async fn a_refused_rotation_puts_the_session_back_in_its_users_index() {
    let store = MemoryStore::builder()
        .max_sessions_per_user(1, PerUserLimit::Refuse)
        .sweep(SweepConfig::disabled())
        .build();
    let t = Timestamp::from_unix(1_000_000);
    let dan = record(Some("dan"), "Firefox", t);
    let eve = record(Some("eve"), "Firefox", t);
    store.create(&dan).await.expect("dan");
    store.create(&eve).await.expect("eve");
    // Dan's session signing in as Eve, who is at her bound: refused, nothing changes.
    let as_eve = record(Some("eve"), "Firefox", t);
    let err = store
        .rotate(&dan.key, None, &as_eve, t)
        .await
        .expect_err("eve is at her bound");
    assert!(
        matches!(err, StoreError::UserLimitReached { limit: 1 }),
        "{err:?}"
    );
    let dans = store
        .list_by_user(&UserId::from("dan"), t)
        .await
        .expect("list");
    assert_eq!(dans.len(), 1);
    assert_eq!(dans[0].key, dan.key);
    assert_eq!(pairs(&store), 2);
    assert_eq!(
        store
            .delete_by_user(&UserId::from("dan"), None, t)
            .await
            .expect("by user"),
        1
    );
    assert!(store.load(&dan.key, t).await.expect("load").is_none());
}

/// A rotation onto a key that is taken puts the old record back. When the taken key and the
/// old one share a shard, putting it back must not wait on the shard lock the failed insert
/// took (it once did, and the thread hung: one collision in 64 in the conformance suite).
#[test]
fn a_rotation_collision_in_the_old_keys_shard_puts_the_old_record_back() {
    let t = Timestamp::from_unix(1_000_000);
    for user in [None, Some("ann")] {
        let store = store();
        let old = record(user, "Firefox", t);
        // A taken key in the old key's own shard.
        let taken = std::iter::repeat_with(|| record(None, "Firefox", t))
            .find(|r| shard_of(frag(&r.key)) == shard_of(frag(&old.key)))
            .expect("a key in the same shard");
        store.create_now(&old).expect("create old");
        store.create_now(&taken).expect("create taken");
        let mut new = record(user, "Firefox", t);
        new.key = taken.key;
        // On its own thread, so that a regression fails here instead of hanging the suite.
        let (done, outcome) = std::sync::mpsc::channel();
        let rotating = store.clone();
        let old_key = old.key;
        std::thread::spawn(move || {
            let _ = done.send(rotating.rotate_now(&old_key, None, &new, t));
        });
        let result = outcome
            .recv_timeout(Duration::from_secs(10))
            .expect("the rotation returns instead of waiting on its own shard lock");
        assert!(matches!(result, Err(StoreError::Collision)), "{result:?}");
        let back = store
            .load_now(&old.key, t)
            .expect("load")
            .expect("old is back");
        assert_eq!(back.handle, old.handle);
        assert_eq!(back.user, old.user);
        let kept = store.load_now(&taken.key, t).expect("load").expect("taken");
        assert_eq!(kept.handle, taken.handle);
    }
}
