//! The cases. Each takes a fresh store and returns `Err(Failure)` with what it expected.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sessionward_core::{
    ChangeSet, Clock as _, RoleSet, RotateOutcome, SaveOutcome, SessionData, SessionHandle,
    SessionKey, SessionRecord, SessionStore, SessionToken, StoreError, SystemClock, Timestamp,
    UserId,
};

use crate::{Case, CaseFuture, CaseResult, Failure};

type Store = Arc<dyn SessionStore>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure::new(format!("{} (line {})", format!($($msg)+), line!())));
        }
    };
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(Failure::new(format!(
                "expected `{}` == `{}`: {:?} != {:?} (line {})",
                stringify!($left),
                stringify!($right),
                l,
                r,
                line!()
            )));
        }
    }};
}

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        /// Every case of the suite, by name.
        pub static CASES: &[Case] = &[
            $(Case {
                name: stringify!($name),
                run: |store| -> CaseFuture { Box::pin($name(store)) },
            }),+
        ];
    };
}

cases![
    create_then_load_round_trips_every_field,
    create_collision_is_an_error_and_keeps_the_original,
    load_of_unknown_key_is_none,
    load_hides_idle_expired_record,
    load_hides_absolute_expired_record,
    touch_extends_idle_expiry,
    touch_never_extends_absolute_expiry,
    touch_of_unknown_or_expired_is_false,
    touch_never_moves_last_seen_back,
    save_sets_and_removes_keys,
    save_increments_version,
    save_merges_data_keys_from_a_stale_version,
    save_structural_change_with_stale_version_conflicts,
    save_roles_with_current_version,
    save_lifetime_override,
    save_after_delete_is_gone_and_recreates_nothing,
    save_after_expiry_is_gone,
    save_removes_and_sets_in_one_change,
    concurrent_saves_of_distinct_keys_all_survive,
    save_racing_delete_never_resurrects,
    rotate_moves_the_record_to_the_new_key,
    rotate_of_gone_record_creates_nothing,
    rotate_of_expired_record_creates_nothing,
    concurrent_rotations_leave_exactly_one_successor,
    rotate_onto_existing_key_is_a_collision,
    rotate_anonymous_to_user_indexes_the_user,
    delete_existing_and_missing,
    delete_by_user_deletes_all,
    delete_by_user_keeps_the_excepted_key,
    delete_by_user_leaves_other_users_alone,
    delete_by_user_reaches_rotated_sessions,
    list_by_user_lists_live_sessions_only,
    list_by_user_of_unknown_user_is_empty,
    list_by_user_after_delete_omits_it,
    set_roles_for_user_changes_every_session,
    set_roles_for_user_leaves_other_users_alone,
    delete_by_handle_ends_own_session,
    delete_by_handle_refuses_another_users_handle,
    delete_by_handle_unknown_is_false,
    delete_expired_counts_what_it_deletes,
    delete_expired_respects_the_limit,
    delete_expired_keeps_touched_sessions,
    rotate_with_a_stale_version_conflicts_and_changes_nothing,
    rotate_with_the_current_version_rotates,
    save_over_the_data_limit_is_refused_and_changes_nothing,
    concurrent_saves_cannot_grow_the_data_past_the_limit,
    a_versioned_rotation_and_a_racing_save_never_both_succeed,
];

const IDLE: Duration = Duration::from_secs(30 * 60);
const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

fn now() -> Timestamp {
    SystemClock.now()
}

fn new_key() -> SessionKey {
    SessionToken::generate()
        .map(|t| t.key())
        .unwrap_or_else(|_| {
            // The OS RNG failing here is a broken machine, not a broken store.
            panic!("the OS RNG failed")
        })
}

fn handle() -> SessionHandle {
    SessionHandle::generate().unwrap_or_else(|_| panic!("the OS RNG failed"))
}

/// A user id unique to this run, so stores shared between cases do not see each other's.
fn unique_user(name: &str) -> UserId {
    UserId::new(format!("{name}-{}", handle()))
}

fn anonymous(at: Timestamp) -> SessionRecord {
    SessionRecord::new(new_key(), handle(), at, IDLE, ABSOLUTE)
}

fn signed_in(user: &UserId, at: Timestamp) -> SessionRecord {
    let mut r = anonymous(at);
    r.user = Some(user.clone());
    r.roles = RoleSet::from_iter(["user"]);
    r.authenticated_at = Some(at);
    r
}

fn data_change(key: &str, value: serde_json::Value) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.data.insert(key, value);
    c
}

async fn live(store: &Store, key: &SessionKey, at: Timestamp) -> Result<SessionRecord, Failure> {
    store
        .load(key, at)
        .await?
        .ok_or_else(|| Failure::new("expected a live record, found none"))
}

async fn create_then_load_round_trips_every_field(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("alice");
    let mut r = signed_in(&user, t);
    r.roles = RoleSet::from_iter(["admin", "user"]);
    r.data = SessionData::from_json(r#"{"cart":["a","b"],"n":1,"nested":{"x":null}}"#)
        .map_err(|e| Failure::new(e.to_string()))?;
    r.user_agent = Some("Mozilla/5.0 (conformance)".into());
    r.idle_timeout = Duration::from_secs(600);
    r.absolute_expires_at = t + Duration::from_secs(7200);
    store.create(&r).await?;
    let back = live(&store, &r.key, t).await?;
    ensure_eq!(back.key, r.key);
    ensure_eq!(back.handle, r.handle);
    ensure_eq!(back.user, r.user);
    ensure_eq!(back.roles, r.roles);
    ensure_eq!(
        back.data
            .to_map()
            .map_err(|e| Failure::new(e.to_string()))?,
        r.data.to_map().map_err(|e| Failure::new(e.to_string()))?
    );
    ensure_eq!(back.created_at, r.created_at);
    ensure_eq!(back.last_seen_at, r.last_seen_at);
    ensure_eq!(back.authenticated_at, r.authenticated_at);
    ensure_eq!(back.idle_timeout, r.idle_timeout);
    ensure_eq!(back.absolute_expires_at, r.absolute_expires_at);
    ensure_eq!(back.user_agent, r.user_agent);
    ensure_eq!(back.version, r.version);
    // An anonymous record round-trips its `None`s.
    let a = anonymous(t);
    store.create(&a).await?;
    let back = live(&store, &a.key, t).await?;
    ensure_eq!(back.user, None);
    ensure_eq!(back.authenticated_at, None);
    ensure!(
        back.roles.is_empty(),
        "anonymous record has roles {:?}",
        back.roles
    );
    ensure!(back.data.is_empty(), "anonymous record has data");
    Ok(())
}

async fn create_collision_is_an_error_and_keeps_the_original(store: Store) -> CaseResult {
    let t = now();
    let mut first = anonymous(t);
    first.data =
        SessionData::from_json(r#"{"owner":"first"}"#).map_err(|e| Failure::new(e.to_string()))?;
    store.create(&first).await?;
    let mut second = anonymous(t);
    second.key = first.key;
    second.user = Some(unique_user("mallory"));
    match store.create(&second).await {
        Err(StoreError::Collision) => {}
        other => return Err(Failure::new(format!("expected Collision, got {other:?}"))),
    }
    let back = live(&store, &first.key, t).await?;
    ensure_eq!(back.handle, first.handle);
    ensure_eq!(back.user, None);
    ensure_eq!(back.data.as_json().contains("first"), true);
    Ok(())
}

async fn load_of_unknown_key_is_none(store: Store) -> CaseResult {
    ensure!(
        store.load(&new_key(), now()).await?.is_none(),
        "unknown key loaded"
    );
    Ok(())
}

async fn load_hides_idle_expired_record(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    store.create(&r).await?;
    live(&store, &r.key, t + Duration::from_secs(59)).await?;
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(60))
            .await?
            .is_none(),
        "record loaded at its idle expiry"
    );
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(3600))
            .await?
            .is_none(),
        "record loaded long after its idle expiry"
    );
    Ok(())
}

async fn load_hides_absolute_expired_record(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(3600);
    r.absolute_expires_at = t + Duration::from_secs(100);
    store.create(&r).await?;
    live(&store, &r.key, t + Duration::from_secs(99)).await?;
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(100))
            .await?
            .is_none(),
        "record loaded at its absolute expiry"
    );
    Ok(())
}

async fn touch_extends_idle_expiry(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    store.create(&r).await?;
    ensure!(
        store.touch(&r.key, t + Duration::from_secs(50)).await?,
        "touch of a live record returned false"
    );
    let back = live(&store, &r.key, t + Duration::from_secs(100)).await?;
    ensure_eq!(back.last_seen_at, t + Duration::from_secs(50));
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(110))
            .await?
            .is_none(),
        "record outlived last_seen + idle"
    );
    Ok(())
}

async fn touch_never_extends_absolute_expiry(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    r.absolute_expires_at = t + Duration::from_secs(100);
    store.create(&r).await?;
    for s in [40, 80, 99] {
        ensure!(
            store.touch(&r.key, t + Duration::from_secs(s)).await?,
            "touch at +{s}s failed"
        );
    }
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(100))
            .await?
            .is_none(),
        "activity extended the absolute expiry"
    );
    Ok(())
}

async fn touch_of_unknown_or_expired_is_false(store: Store) -> CaseResult {
    let t = now();
    ensure!(
        !store.touch(&new_key(), t).await?,
        "touch of unknown key returned true"
    );
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(10);
    store.create(&r).await?;
    ensure!(
        !store.touch(&r.key, t + Duration::from_secs(10)).await?,
        "touch revived an expired record"
    );
    ensure!(
        store
            .load(&r.key, t + Duration::from_secs(10))
            .await?
            .is_none(),
        "expired record loads after touch"
    );
    Ok(())
}

async fn touch_never_moves_last_seen_back(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    store.touch(&r.key, t + Duration::from_secs(100)).await?;
    store.touch(&r.key, t + Duration::from_secs(50)).await?;
    let back = live(&store, &r.key, t + Duration::from_secs(100)).await?;
    ensure_eq!(back.last_seen_at, t + Duration::from_secs(100));
    Ok(())
}

async fn save_sets_and_removes_keys(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.data = SessionData::from_json(r#"{"keep":1,"drop":2}"#)
        .map_err(|e| Failure::new(e.to_string()))?;
    store.create(&r).await?;
    let mut c = data_change("new", json!({"a": [1, 2]}));
    c.data.remove("drop");
    let out = store.save(&r.key, r.version, &c, t).await?;
    ensure!(
        matches!(out, SaveOutcome::Saved { .. }),
        "save answered {out:?}"
    );
    let map = live(&store, &r.key, t)
        .await?
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure_eq!(map.get("keep"), Some(&json!(1)));
    ensure_eq!(map.get("new"), Some(&json!({"a": [1, 2]})));
    ensure!(!map.contains_key("drop"), "removed key still present");
    Ok(())
}

async fn save_increments_version(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let out = store
        .save(&r.key, 0, &data_change("a", json!(1)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 1 });
    let out = store
        .save(&r.key, 1, &data_change("a", json!(2)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 2 });
    ensure_eq!(live(&store, &r.key, t).await?.version, 2);
    Ok(())
}

async fn save_merges_data_keys_from_a_stale_version(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    // Two requests both read version 0 and change different keys.
    store
        .save(&r.key, 0, &data_change("a", json!("A")), t)
        .await?;
    let out = store
        .save(&r.key, 0, &data_change("b", json!("B")), t)
        .await?;
    ensure!(
        matches!(out, SaveOutcome::Saved { .. }),
        "data-only save from a stale version answered {out:?}"
    );
    let map = live(&store, &r.key, t)
        .await?
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure_eq!(map.get("a"), Some(&json!("A")));
    ensure_eq!(map.get("b"), Some(&json!("B")));
    Ok(())
}

async fn save_structural_change_with_stale_version_conflicts(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("carol"), t);
    store.create(&r).await?;
    store
        .save(&r.key, 0, &data_change("a", json!(1)), t)
        .await?;
    let c = ChangeSet {
        roles: Some(RoleSet::from_iter(["admin"])),
        ..ChangeSet::default()
    };
    let out = store.save(&r.key, 0, &c, t).await?;
    ensure_eq!(out, SaveOutcome::Conflict { current_version: 1 });
    ensure!(
        !live(&store, &r.key, t).await?.roles.contains("admin"),
        "a conflicting role change was applied"
    );
    Ok(())
}

async fn save_roles_with_current_version(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("dave"), t);
    store.create(&r).await?;
    let c = ChangeSet {
        roles: Some(RoleSet::from_iter(["admin", "user"])),
        ..ChangeSet::default()
    };
    let out = store.save(&r.key, 0, &c, t).await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 1 });
    ensure_eq!(
        live(&store, &r.key, t).await?.roles,
        RoleSet::from_iter(["admin", "user"])
    );
    Ok(())
}

async fn save_lifetime_override(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("erin"), t);
    store.create(&r).await?;
    let thirty_days = t + Duration::from_secs(30 * 24 * 3600);
    let c = ChangeSet {
        absolute_expires_at: Some(thirty_days),
        idle_timeout: Some(Duration::from_secs(7 * 24 * 3600)),
        ..ChangeSet::default()
    };
    store.save(&r.key, 0, &c, t).await?;
    let back = live(&store, &r.key, t).await?;
    ensure_eq!(back.absolute_expires_at, thirty_days);
    ensure_eq!(back.idle_timeout, Duration::from_secs(7 * 24 * 3600));
    // Alive past the old 12 h absolute expiry, with activity.
    let later = t + Duration::from_secs(13 * 3600);
    ensure!(
        store.touch(&r.key, later).await?,
        "remember-me session ended at the default absolute expiry"
    );
    // A shorter lifetime takes effect too.
    let c = ChangeSet {
        absolute_expires_at: Some(later + Duration::from_secs(10)),
        ..ChangeSet::default()
    };
    store.save(&r.key, 1, &c, later).await?;
    ensure!(
        store
            .load(&r.key, later + Duration::from_secs(10))
            .await?
            .is_none(),
        "shortened lifetime not enforced"
    );
    Ok(())
}

async fn save_after_delete_is_gone_and_recreates_nothing(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    ensure!(
        store.delete(&r.key).await?,
        "delete of a live record returned false"
    );
    let out = store
        .save(&r.key, 0, &data_change("a", json!(1)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Gone);
    ensure!(
        store.load(&r.key, t).await?.is_none(),
        "save after delete recreated the record"
    );
    Ok(())
}

async fn save_after_expiry_is_gone(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    store.create(&r).await?;
    let late = t + Duration::from_secs(61);
    let c = ChangeSet {
        last_seen_at: Some(late),
        ..data_change("a", json!(1))
    };
    let out = store.save(&r.key, 0, &c, late).await?;
    ensure_eq!(out, SaveOutcome::Gone);
    ensure!(
        store.load(&r.key, late).await?.is_none(),
        "save revived an expired record"
    );
    Ok(())
}

async fn save_removes_and_sets_in_one_change(store: Store) -> CaseResult {
    // One change set that removes a key and sets another applies both.
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    store
        .save(&r.key, 0, &data_change("a", json!(1)), t)
        .await?;
    let mut c = data_change("b", json!(2));
    c.data.remove("a");
    store.save(&r.key, 1, &c, t).await?;
    let map = live(&store, &r.key, t)
        .await?
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure_eq!(map.len(), 1);
    ensure_eq!(map.get("b"), Some(&json!(2)));
    Ok(())
}

async fn concurrent_saves_of_distinct_keys_all_survive(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let key = r.key;
        tasks.push(tokio::spawn(async move {
            store
                .save(&key, 0, &data_change(&format!("k{i}"), json!(i)), t)
                .await
        }));
    }
    for task in tasks {
        let out = task
            .await
            .map_err(|e| Failure::new(format!("save task: {e}")))??;
        ensure!(
            matches!(out, SaveOutcome::Saved { .. }),
            "concurrent save answered {out:?}"
        );
    }
    let back = live(&store, &r.key, t).await?;
    let map = back
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    for i in 0..50 {
        ensure_eq!(map.get(&format!("k{i}")), Some(&json!(i)));
    }
    ensure_eq!(back.version, 50);
    Ok(())
}

async fn save_racing_delete_never_resurrects(store: Store) -> CaseResult {
    let t = now();
    for round in 0..10 {
        let r = anonymous(t);
        store.create(&r).await?;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let key = r.key;
            tasks.push(tokio::spawn(async move {
                store
                    .save(&key, 0, &data_change(&format!("k{i}"), json!(i)), t)
                    .await
                    .map(|_| ())
            }));
        }
        let deleter = {
            let store = store.clone();
            let key = r.key;
            tokio::spawn(async move { store.delete(&key).await })
        };
        for task in tasks {
            task.await
                .map_err(|e| Failure::new(format!("save task: {e}")))??;
        }
        deleter
            .await
            .map_err(|e| Failure::new(format!("delete task: {e}")))??;
        ensure!(
            store.load(&r.key, t).await?.is_none(),
            "round {round}: a save after delete resurrected the record"
        );
    }
    Ok(())
}

async fn rotate_moves_the_record_to_the_new_key(store: Store) -> CaseResult {
    let t = now();
    let mut old = anonymous(t);
    old.data =
        SessionData::from_json(r#"{"cart":["x"]}"#).map_err(|e| Failure::new(e.to_string()))?;
    store.create(&old).await?;
    let user = unique_user("frank");
    let mut new = signed_in(&user, t);
    new.data = old.data.clone();
    ensure_eq!(
        store.rotate(&old.key, None, &new, t).await?,
        RotateOutcome::Rotated
    );
    ensure!(
        store.load(&old.key, t).await?.is_none(),
        "old key still loads after rotation"
    );
    let back = live(&store, &new.key, t).await?;
    ensure_eq!(back.user, Some(user));
    ensure!(
        back.data.as_json().contains("cart"),
        "data lost in rotation"
    );
    Ok(())
}

async fn rotate_of_gone_record_creates_nothing(store: Store) -> CaseResult {
    let t = now();
    let new = anonymous(t);
    ensure_eq!(
        store.rotate(&new_key(), None, &new, t).await?,
        RotateOutcome::Gone
    );
    ensure!(
        store.load(&new.key, t).await?.is_none(),
        "rotation of a missing record created the successor"
    );
    Ok(())
}

async fn rotate_of_expired_record_creates_nothing(store: Store) -> CaseResult {
    let t = now();
    let mut old = anonymous(t);
    old.idle_timeout = Duration::from_secs(5);
    store.create(&old).await?;
    let late = t + Duration::from_secs(6);
    let new = anonymous(late);
    ensure_eq!(
        store.rotate(&old.key, None, &new, late).await?,
        RotateOutcome::Gone
    );
    ensure!(
        store.load(&new.key, late).await?.is_none(),
        "rotation of an expired record created the successor"
    );
    Ok(())
}

async fn concurrent_rotations_leave_exactly_one_successor(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("grace");
    let old = signed_in(&user, t);
    store.create(&old).await?;
    let mut tasks = Vec::new();
    let mut successors = Vec::new();
    for _ in 0..20 {
        let new = signed_in(&user, t);
        successors.push(new.key);
        let store = store.clone();
        let old_key = old.key;
        tasks.push(tokio::spawn(async move {
            store.rotate(&old_key, None, &new, t).await
        }));
    }
    let mut rotated = 0;
    for task in tasks {
        if task
            .await
            .map_err(|e| Failure::new(format!("rotate task: {e}")))??
            == RotateOutcome::Rotated
        {
            rotated += 1;
        }
    }
    ensure_eq!(rotated, 1);
    let mut live_successors = 0;
    for key in &successors {
        if store.load(key, t).await?.is_some() {
            live_successors += 1;
        }
    }
    ensure_eq!(live_successors, 1);
    ensure_eq!(store.list_by_user(&user, t).await?.len(), 1);
    Ok(())
}

async fn rotate_onto_existing_key_is_a_collision(store: Store) -> CaseResult {
    let t = now();
    let old = anonymous(t);
    let other = anonymous(t);
    store.create(&old).await?;
    store.create(&other).await?;
    let mut new = anonymous(t);
    new.key = other.key;
    match store.rotate(&old.key, None, &new, t).await {
        Err(StoreError::Collision) => {}
        other => return Err(Failure::new(format!("expected Collision, got {other:?}"))),
    }
    live(&store, &old.key, t).await?;
    ensure_eq!(live(&store, &other.key, t).await?.handle, other.handle);
    Ok(())
}

async fn rotate_anonymous_to_user_indexes_the_user(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("heidi");
    let old = anonymous(t);
    store.create(&old).await?;
    let new = signed_in(&user, t);
    store.rotate(&old.key, None, &new, t).await?;
    let list = store.list_by_user(&user, t).await?;
    ensure_eq!(list.len(), 1);
    ensure_eq!(list[0].key, new.key);
    // And rotating again (a privilege change) keeps the index right.
    let newer = signed_in(&user, t);
    store.rotate(&new.key, None, &newer, t).await?;
    let list = store.list_by_user(&user, t).await?;
    ensure_eq!(
        list.iter().map(|r| r.key).collect::<Vec<_>>(),
        vec![newer.key]
    );
    Ok(())
}

async fn delete_existing_and_missing(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("ivan"), t);
    store.create(&r).await?;
    ensure!(
        store.delete(&r.key).await?,
        "delete of a live record returned false"
    );
    ensure!(!store.delete(&r.key).await?, "second delete returned true");
    ensure!(
        store.load(&r.key, t).await?.is_none(),
        "deleted record loads"
    );
    let user = r.user.clone().unwrap_or_else(|| unique_user("x"));
    ensure!(
        store.list_by_user(&user, t).await?.is_empty(),
        "deleted record still listed"
    );
    Ok(())
}

async fn delete_by_user_deletes_all(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("judy");
    let records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &records {
        store.create(r).await?;
    }
    ensure_eq!(store.delete_by_user(&user, None).await?, 3);
    for r in &records {
        ensure!(store.load(&r.key, t).await?.is_none(), "a session survived");
    }
    ensure_eq!(store.delete_by_user(&user, None).await?, 0);
    Ok(())
}

async fn delete_by_user_keeps_the_excepted_key(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("ken");
    let records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &records {
        store.create(r).await?;
    }
    ensure_eq!(store.delete_by_user(&user, Some(&records[1].key)).await?, 2);
    live(&store, &records[1].key, t).await?;
    ensure!(
        store.load(&records[0].key, t).await?.is_none(),
        "0 survived"
    );
    ensure!(
        store.load(&records[2].key, t).await?.is_none(),
        "2 survived"
    );
    ensure_eq!(store.list_by_user(&user, t).await?.len(), 1);
    Ok(())
}

async fn delete_by_user_leaves_other_users_alone(store: Store) -> CaseResult {
    let t = now();
    let (a, b) = (unique_user("leo"), unique_user("mia"));
    let ra = signed_in(&a, t);
    let rb = signed_in(&b, t);
    let anon = anonymous(t);
    for r in [&ra, &rb, &anon] {
        store.create(r).await?;
    }
    ensure_eq!(store.delete_by_user(&a, None).await?, 1);
    live(&store, &rb.key, t).await?;
    live(&store, &anon.key, t).await?;
    Ok(())
}

async fn delete_by_user_reaches_rotated_sessions(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("nina");
    let old = signed_in(&user, t);
    store.create(&old).await?;
    let new = signed_in(&user, t);
    store.rotate(&old.key, None, &new, t).await?;
    ensure_eq!(store.delete_by_user(&user, None).await?, 1);
    ensure!(
        store.load(&new.key, t).await?.is_none(),
        "rotated session survived sign-out everywhere"
    );
    Ok(())
}

async fn list_by_user_lists_live_sessions_only(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("olga");
    let mut short = signed_in(&user, t);
    short.idle_timeout = Duration::from_secs(10);
    let mut long = signed_in(&user, t + Duration::from_secs(1));
    long.user_agent = Some("phone".into());
    store.create(&short).await?;
    store.create(&long).await?;
    store.create(&signed_in(&unique_user("other"), t)).await?;
    let list = store
        .list_by_user(&user, t + Duration::from_secs(5))
        .await?;
    ensure_eq!(
        list.iter().map(|r| r.key).collect::<Vec<_>>(),
        vec![short.key, long.key]
    );
    let list = store
        .list_by_user(&user, t + Duration::from_secs(20))
        .await?;
    ensure_eq!(
        list.iter().map(|r| r.key).collect::<Vec<_>>(),
        vec![long.key]
    );
    ensure_eq!(list[0].user_agent.as_deref(), Some("phone"));
    Ok(())
}

async fn list_by_user_of_unknown_user_is_empty(store: Store) -> CaseResult {
    ensure!(
        store
            .list_by_user(&unique_user("nobody"), now())
            .await?
            .is_empty(),
        "unknown user has sessions"
    );
    Ok(())
}

async fn list_by_user_after_delete_omits_it(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("pat");
    let a = signed_in(&user, t);
    let b = signed_in(&user, t);
    store.create(&a).await?;
    store.create(&b).await?;
    store.delete(&a.key).await?;
    let list = store.list_by_user(&user, t).await?;
    ensure_eq!(list.iter().map(|r| r.key).collect::<Vec<_>>(), vec![b.key]);
    Ok(())
}

async fn set_roles_for_user_changes_every_session(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("quinn");
    let mut records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &mut records {
        r.roles = RoleSet::from_iter(["admin", "user"]);
        store.create(r).await?;
    }
    let demoted = RoleSet::from_iter(["user"]);
    ensure_eq!(store.set_roles_for_user(&user, &demoted).await?, 3);
    for r in &records {
        let back = live(&store, &r.key, t).await?;
        ensure_eq!(back.roles, demoted);
        ensure!(
            back.version > r.version,
            "role change did not bump the version"
        );
    }
    Ok(())
}

async fn set_roles_for_user_leaves_other_users_alone(store: Store) -> CaseResult {
    let t = now();
    let (a, b) = (unique_user("rita"), unique_user("sam"));
    let ra = signed_in(&a, t);
    let mut rb = signed_in(&b, t);
    rb.roles = RoleSet::from_iter(["admin"]);
    store.create(&ra).await?;
    store.create(&rb).await?;
    store.set_roles_for_user(&a, &RoleSet::empty()).await?;
    ensure_eq!(
        live(&store, &rb.key, t).await?.roles,
        RoleSet::from_iter(["admin"])
    );
    ensure!(
        live(&store, &ra.key, t).await?.roles.is_empty(),
        "roles not set"
    );
    ensure_eq!(
        store
            .set_roles_for_user(&unique_user("ghost"), &RoleSet::empty())
            .await?,
        0
    );
    Ok(())
}

async fn delete_by_handle_ends_own_session(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("tess");
    let a = signed_in(&user, t);
    let b = signed_in(&user, t);
    store.create(&a).await?;
    store.create(&b).await?;
    ensure!(
        store.delete_by_handle(&user, &a.handle).await?,
        "own handle refused"
    );
    ensure!(store.load(&a.key, t).await?.is_none(), "session survived");
    live(&store, &b.key, t).await?;
    ensure!(
        !store.delete_by_handle(&user, &a.handle).await?,
        "second delete by handle returned true"
    );
    Ok(())
}

async fn delete_by_handle_refuses_another_users_handle(store: Store) -> CaseResult {
    let t = now();
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let ra = signed_in(&alice, t);
    let rb = signed_in(&bob, t);
    store.create(&ra).await?;
    store.create(&rb).await?;
    ensure!(
        !store.delete_by_handle(&alice, &rb.handle).await?,
        "alice ended bob's session by handle"
    );
    live(&store, &rb.key, t).await?;
    Ok(())
}

async fn delete_by_handle_unknown_is_false(store: Store) -> CaseResult {
    ensure!(
        !store
            .delete_by_handle(&unique_user("uma"), &handle())
            .await?,
        "unknown handle deleted something"
    );
    Ok(())
}

async fn delete_expired_counts_what_it_deletes(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("vic");
    let mut expiring = Vec::new();
    for i in 0..5 {
        let mut r = if i % 2 == 0 {
            anonymous(t)
        } else {
            signed_in(&user, t)
        };
        r.idle_timeout = Duration::from_secs(10);
        store.create(&r).await?;
        expiring.push(r);
    }
    let keep = anonymous(t);
    store.create(&keep).await?;
    ensure_eq!(
        store
            .delete_expired(t + Duration::from_secs(5), 100)
            .await?,
        0
    );
    ensure_eq!(
        store
            .delete_expired(t + Duration::from_secs(10), 100)
            .await?,
        5
    );
    ensure_eq!(
        store
            .delete_expired(t + Duration::from_secs(10), 100)
            .await?,
        0
    );
    live(&store, &keep.key, t + Duration::from_secs(10)).await?;
    ensure!(
        store
            .list_by_user(&user, t + Duration::from_secs(10))
            .await?
            .is_empty(),
        "expired sessions still listed"
    );
    // The sweep really removed them: even a load at the creation time finds nothing.
    for r in &expiring {
        ensure!(
            store.load(&r.key, t).await?.is_none(),
            "expired record kept"
        );
    }
    Ok(())
}

async fn delete_expired_respects_the_limit(store: Store) -> CaseResult {
    let t = now();
    for _ in 0..7 {
        let mut r = anonymous(t);
        r.absolute_expires_at = t + Duration::from_secs(1);
        store.create(&r).await?;
    }
    let later = t + Duration::from_secs(2);
    ensure_eq!(store.delete_expired(later, 3).await?, 3);
    ensure_eq!(store.delete_expired(later, 3).await?, 3);
    ensure_eq!(store.delete_expired(later, 3).await?, 1);
    ensure_eq!(store.delete_expired(later, 3).await?, 0);
    Ok(())
}

async fn delete_expired_keeps_touched_sessions(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    store.create(&r).await?;
    store.touch(&r.key, t + Duration::from_secs(50)).await?;
    ensure_eq!(
        store
            .delete_expired(t + Duration::from_secs(70), 100)
            .await?,
        0
    );
    live(&store, &r.key, t + Duration::from_secs(70)).await?;
    ensure_eq!(
        store
            .delete_expired(t + Duration::from_secs(110), 100)
            .await?,
        1
    );
    Ok(())
}

async fn rotate_with_a_stale_version_conflicts_and_changes_nothing(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("wes");
    let old = signed_in(&user, t);
    store.create(&old).await?;
    // A concurrent request changes the record (an admin demotes, a save lands).
    store.set_roles_for_user(&user, &RoleSet::empty()).await?;
    let mut new = signed_in(&user, t);
    new.roles = RoleSet::from_iter(["admin", "user"]);
    let out = store.rotate(&old.key, Some(old.version), &new, t).await?;
    ensure!(
        matches!(out, RotateOutcome::Conflict { current_version } if current_version > old.version),
        "stale rotation answered {out:?}"
    );
    ensure!(
        live(&store, &old.key, t).await?.roles.is_empty(),
        "old record changed"
    );
    ensure!(
        store.load(&new.key, t).await?.is_none(),
        "successor created from a stale read"
    );
    Ok(())
}

async fn rotate_with_the_current_version_rotates(store: Store) -> CaseResult {
    let t = now();
    let old = anonymous(t);
    store.create(&old).await?;
    store
        .save(&old.key, 0, &data_change("a", json!(1)), t)
        .await?;
    let new = signed_in(&unique_user("xena"), t);
    ensure_eq!(
        store.rotate(&old.key, Some(1), &new, t).await?,
        RotateOutcome::Rotated
    );
    ensure!(
        store.load(&old.key, t).await?.is_none(),
        "old key still loads"
    );
    live(&store, &new.key, t).await?;
    Ok(())
}

async fn save_over_the_data_limit_is_refused_and_changes_nothing(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let big = "x".repeat(60);
    let mut first = data_change("a", json!(big));
    first.data_limit = Some(100);
    ensure!(
        matches!(
            store.save(&r.key, 0, &first, t).await?,
            SaveOutcome::Saved { .. }
        ),
        "a save under the limit was refused"
    );
    // A second request adds another key: together they pass the limit.
    let mut second = data_change("b", json!(big));
    second.data_limit = Some(100);
    match store.save(&r.key, 0, &second, t).await {
        Err(StoreError::Data(_)) => {}
        other => {
            return Err(Failure::new(format!(
                "expected a data error, got {other:?}"
            )));
        }
    }
    let back = live(&store, &r.key, t).await?;
    let map = back
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure!(
        map.contains_key("a") && !map.contains_key("b"),
        "refused save changed the data"
    );
    ensure_eq!(back.version, 1);
    Ok(())
}

/// Concurrent saves of different keys under one limit: the record never passes it, every save
/// either lands or is refused as too large, and the data holds exactly the keys that landed.
async fn concurrent_saves_cannot_grow_the_data_past_the_limit(store: Store) -> CaseResult {
    const LIMIT: usize = 250;
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    // Each key holds 50 characters: about four fit under the limit, whatever the separators.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let key = r.key;
        tasks.push(tokio::spawn(async move {
            let mut c = data_change(&format!("k{i:02}"), json!("v".repeat(50)));
            c.data_limit = Some(LIMIT);
            (format!("k{i:02}"), store.save(&key, 0, &c, t).await)
        }));
    }
    let mut landed = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task
            .await
            .map_err(|e| Failure::new(format!("save task: {e}")))?
        {
            (key, Ok(SaveOutcome::Saved { .. })) => landed.push(key),
            (_, Err(StoreError::Data(_))) => refused += 1,
            (_, other) => return Err(Failure::new(format!("unexpected {other:?}"))),
        }
    }
    ensure!(
        !landed.is_empty() && refused > 0,
        "landed {landed:?}, refused {refused}"
    );
    let back = live(&store, &r.key, t).await?;
    ensure!(
        back.data.len_bytes() <= LIMIT,
        "data grew to {} bytes past the limit of {LIMIT}",
        back.data.len_bytes()
    );
    let mut keys: Vec<String> = back
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?
        .keys()
        .cloned()
        .collect();
    keys.sort();
    landed.sort();
    ensure_eq!(keys, landed);
    ensure_eq!(back.version, landed.len() as u64);
    Ok(())
}

/// A rotation from a read version and a save racing it on the old record never both succeed:
/// either the save landed first (the rotation conflicts) or the rotation did (the save finds
/// the record gone), so the successor never misses a change.
async fn a_versioned_rotation_and_a_racing_save_never_both_succeed(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("rita");
    for round in 0..20 {
        let old = signed_in(&user, t);
        store.create(&old).await?;
        let new = signed_in(&user, t);
        let rotation = {
            let (store, new, key) = (store.clone(), new.clone(), old.key);
            tokio::spawn(async move { store.rotate(&key, Some(0), &new, t).await })
        };
        let save = {
            let (store, key) = (store.clone(), old.key);
            tokio::spawn(async move {
                store
                    .save(&key, 0, &data_change("cart", json!(round)), t)
                    .await
            })
        };
        let rotation = rotation
            .await
            .map_err(|e| Failure::new(format!("rotate task: {e}")))??;
        let save = save
            .await
            .map_err(|e| Failure::new(format!("save task: {e}")))??;
        match (rotation, save) {
            (RotateOutcome::Rotated, SaveOutcome::Gone) => {
                ensure!(
                    store.load(&old.key, t).await?.is_none(),
                    "round {round}: old key loads"
                );
                live(&store, &new.key, t).await?;
            }
            (RotateOutcome::Conflict { .. }, SaveOutcome::Saved { .. }) => {
                ensure!(
                    store.load(&new.key, t).await?.is_none(),
                    "round {round}: successor exists"
                );
                let kept = live(&store, &old.key, t).await?;
                ensure!(
                    kept.data.as_json().contains("cart"),
                    "round {round}: save lost"
                );
            }
            other => return Err(Failure::new(format!("round {round}: {other:?}"))),
        }
    }
    Ok(())
}
