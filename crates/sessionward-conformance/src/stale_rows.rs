//! A check for SQL-like stores whose tests can write rows the API cannot make: a session
//! authorized before its user's last change (what a sign-in racing the user's *first* change can
//! leave in a store that has no row to lock yet) is dead to every operation, and the sweeper
//! forgets a user's change only as the contract allows. The suite's cases cannot build such a
//! row through the trait, so a store's own tests call this with two hooks of their own.

use std::time::Duration;

use serde_json::json;
use sessionward_core::{
    RoleSet, RotateOutcome, SaveOutcome, SessionStore, StoreError, Timestamp, UserId,
};

use crate::fixtures::{data_change, record_lasting};

/// Runs the check on `store`, whose data must be empty of the users `ann` to `fay`.
/// `make_stale(user, unix_secs)` sets `authorized_at` of every session of `user` directly in
/// the backend; `users()` counts the rows (or entries) of per-user change times.
///
/// # Panics
/// On the first rule the store breaks, or a store error.
pub async fn check_stale_rows<S: SessionStore>(
    store: &S,
    make_stale: impl AsyncFn(&str, i64),
    users: impl AsyncFn() -> i64,
) {
    let t = Timestamp::from_unix(1_900_000_000);
    let day = Duration::from_secs(24 * 3600);
    let (ann, cid) = (UserId::from("ann"), UserId::from("cid"));
    let a = record_lasting(Some("ann"), t - Duration::from_secs(10), day * 3, day * 3);
    let c = record_lasting(Some("cid"), t - Duration::from_secs(10), day * 3, day * 3);
    store.create(&a).await.expect("create");
    store.create(&c).await.expect("create");
    let none = RoleSet::empty();
    assert_eq!(
        store
            .set_roles_for_user(&ann, &none, t)
            .await
            .expect("roles"),
        1
    );
    assert_eq!(
        store
            .set_roles_for_user(&cid, &none, t)
            .await
            .expect("roles"),
        1
    );
    assert_eq!(
        store
            .delete_by_user(&UserId::from("bea"), None, t)
            .await
            .expect("delete"),
        0
    );
    assert_eq!(users().await, 3);

    make_stale("cid", t.unix() - 100).await;
    assert!(store.load(&c.key, t).await.expect("load").is_none());
    assert!(store.list_by_user(&cid, t).await.expect("list").is_empty());
    assert!(!store.touch(&c.key, t).await.expect("touch"));
    assert_eq!(
        store
            .save(&c.key, None, &data_change("k", json!(1)), t)
            .await
            .expect("save"),
        SaveOutcome::Gone
    );
    let mut next = record_lasting(Some("cid"), t, day, day);
    next.authorized_at = t;
    assert_eq!(
        store.rotate(&c.key, None, &next, t).await.expect("rotate"),
        RotateOutcome::Gone
    );
    assert!(store.load(&next.key, t).await.expect("load").is_none());
    // The stamped session of ann is current.
    let back = store.load(&a.key, t).await.expect("load").expect("live");
    assert!(back.authorized_at >= t && back.roles.is_empty());

    // A day less a second: nothing is forgotten.
    store
        .delete_expired(t + day - Duration::from_secs(1), 100)
        .await
        .expect("sweep");
    assert_eq!(users().await, 3);
    // A day: ann's and bea's changes go; cid's stays while a session older than it exists.
    let stale = record_lasting(Some("cid"), t - Duration::from_secs(50), day * 3, day * 3);
    assert!(matches!(
        store.create(&stale).await,
        Err(StoreError::AuthorizationChanged)
    ));
    let c2 = record_lasting(Some("cid"), t, day * 3, day * 3);
    store.create(&c2).await.expect("create");
    make_stale("cid", t.unix() - 100).await;
    store.delete_expired(t + day, 100).await.expect("sweep");
    assert_eq!(users().await, 1);
    assert!(store.load(&a.key, t + day).await.expect("load").is_some());
    // With the batch limit: one change at most per call.
    for (i, user) in ["dan", "eve", "fay"].iter().enumerate() {
        let at = t + Duration::from_secs(u64::try_from(i).unwrap_or(0));
        store
            .delete_by_user(&UserId::from(*user), None, at)
            .await
            .expect("delete");
    }
    assert_eq!(users().await, 4);
    store.delete_expired(t + day * 2, 1).await.expect("sweep");
    assert_eq!(users().await, 3);
}
