//! Rotation: a new key for the same session, exactly once, never from a stale read.

use super::prelude::*;

pub(super) async fn rotate_moves_the_record_to_the_new_key(store: Store) -> CaseResult {
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

pub(super) async fn rotate_of_gone_record_creates_nothing(store: Store) -> CaseResult {
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

pub(super) async fn rotate_of_expired_record_creates_nothing(store: Store) -> CaseResult {
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

pub(super) async fn rotate_onto_existing_key_is_a_collision(store: Store) -> CaseResult {
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

pub(super) async fn rotate_anonymous_to_user_indexes_the_user(store: Store) -> CaseResult {
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

pub(super) async fn rotate_with_a_stale_version_conflicts_and_changes_nothing(
    store: Store,
) -> CaseResult {
    let t = now();
    let user = unique_user("wes");
    let old = signed_in(&user, t);
    store.create(&old).await?;
    // A concurrent request changes the record (an admin demotes, a save lands).
    store
        .set_roles_for_user(&user, &RoleSet::empty(), t)
        .await?;
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

pub(super) async fn rotate_with_the_current_version_rotates(store: Store) -> CaseResult {
    let t = now();
    let old = anonymous(t);
    store.create(&old).await?;
    store
        .save(&old.key, Some(0), &data_change("a", json!(1)), t)
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
