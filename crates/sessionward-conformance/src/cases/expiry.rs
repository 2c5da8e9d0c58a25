//! Deleting expired records in batches.

use super::prelude::*;

pub(super) async fn delete_expired_counts_what_it_deletes(store: Store) -> CaseResult {
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

pub(super) async fn delete_expired_respects_the_limit(store: Store) -> CaseResult {
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

pub(super) async fn delete_expired_keeps_touched_sessions(store: Store) -> CaseResult {
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
