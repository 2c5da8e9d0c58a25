//! Creating, loading, touching and deleting one record.

use super::prelude::*;

pub(super) async fn create_then_load_round_trips_every_field(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("alice");
    let mut r = signed_in(&user, t);
    r.roles = RoleSet::from_iter(["admin", "user"]);
    r.data = SessionData::from_json(r#"{"cart":["a","b"],"n":1,"nested":{"x":null}}"#)
        .map_err(|e| Failure::new(e.to_string()))?;
    r.user_agent = Some("Mozilla/5.0 (conformance)".into());
    r.idle_timeout = Duration::from_secs(600);
    r.absolute_expires_at = t + Duration::from_secs(7200);
    r.authorized_at = t - Duration::from_secs(1);
    r.persistent = Some(true);
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
    ensure_eq!(back.authorized_at, r.authorized_at);
    ensure_eq!(back.persistent, r.persistent);
    // An anonymous record round-trips its `None`s.
    let a = anonymous(t);
    store.create(&a).await?;
    let back = live(&store, &a.key, t).await?;
    ensure_eq!(back.user, None);
    ensure_eq!(back.authenticated_at, None);
    ensure_eq!(back.persistent, None);
    ensure!(
        back.roles.is_empty(),
        "anonymous record has roles {:?}",
        back.roles
    );
    ensure!(back.data.is_empty(), "anonymous record has data");
    Ok(())
}

pub(super) async fn create_collision_is_an_error_and_keeps_the_original(
    store: Store,
) -> CaseResult {
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

pub(super) async fn load_of_unknown_key_is_none(store: Store) -> CaseResult {
    ensure!(
        store.load(&new_key(), now()).await?.is_none(),
        "unknown key loaded"
    );
    Ok(())
}

pub(super) async fn load_hides_idle_expired_record(store: Store) -> CaseResult {
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

pub(super) async fn load_hides_absolute_expired_record(store: Store) -> CaseResult {
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

pub(super) async fn touch_extends_idle_expiry(store: Store) -> CaseResult {
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

pub(super) async fn touch_never_extends_absolute_expiry(store: Store) -> CaseResult {
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

pub(super) async fn touch_of_unknown_or_expired_is_false(store: Store) -> CaseResult {
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

pub(super) async fn touch_never_moves_last_seen_back(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    store.touch(&r.key, t + Duration::from_secs(100)).await?;
    store.touch(&r.key, t + Duration::from_secs(50)).await?;
    let back = live(&store, &r.key, t + Duration::from_secs(100)).await?;
    ensure_eq!(back.last_seen_at, t + Duration::from_secs(100));
    Ok(())
}

pub(super) async fn delete_existing_and_missing(store: Store) -> CaseResult {
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
