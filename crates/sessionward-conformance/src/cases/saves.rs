//! Saves: data merges, versions, lifetime changes, the data limit, never a resurrection.

use super::prelude::*;

pub(super) async fn save_sets_and_removes_keys(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.data = SessionData::from_json(r#"{"keep":1,"drop":2}"#)
        .map_err(|e| Failure::new(e.to_string()))?;
    store.create(&r).await?;
    let mut c = data_change("new", json!({"a": [1, 2]}));
    c.data.remove("drop");
    let out = store.save(&r.key, Some(r.version), &c, t).await?;
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

pub(super) async fn save_increments_version(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let out = store
        .save(&r.key, Some(0), &data_change("a", json!(1)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 1 });
    let out = store
        .save(&r.key, Some(1), &data_change("a", json!(2)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 2 });
    ensure_eq!(live(&store, &r.key, t).await?.version, 2);
    Ok(())
}

pub(super) async fn save_merges_data_keys_from_a_stale_version(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    // Two requests both read version 0 and change different keys.
    store
        .save(&r.key, Some(0), &data_change("a", json!("A")), t)
        .await?;
    let out = store
        .save(&r.key, Some(0), &data_change("b", json!("B")), t)
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

pub(super) async fn save_structural_change_with_stale_version_conflicts(
    store: Store,
) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("carol"), t);
    store.create(&r).await?;
    store
        .save(&r.key, Some(0), &data_change("a", json!(1)), t)
        .await?;
    let c = ChangeSet {
        idle_timeout: Some(Duration::from_secs(60)),
        ..ChangeSet::default()
    };
    let out = store.save(&r.key, Some(0), &c, t).await?;
    ensure_eq!(out, SaveOutcome::Conflict { current_version: 1 });
    ensure_eq!(live(&store, &r.key, t).await?.idle_timeout, IDLE);
    Ok(())
}

pub(super) async fn save_structural_change_with_current_version(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("dave"), t);
    store.create(&r).await?;
    let c = ChangeSet {
        idle_timeout: Some(Duration::from_secs(60)),
        ..ChangeSet::default()
    };
    let out = store.save(&r.key, Some(0), &c, t).await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 1 });
    ensure_eq!(
        live(&store, &r.key, t).await?.idle_timeout,
        Duration::from_secs(60)
    );
    Ok(())
}

/// A blind save (no version read) has no version to check: its changes apply whatever the
/// record's version.
pub(super) async fn blind_save_applies_whatever_the_version(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("erin"), t);
    store.create(&r).await?;
    store
        .save(&r.key, Some(0), &data_change("a", json!(1)), t)
        .await?;
    let mut c = data_change("b", json!(2));
    c.idle_timeout = Some(Duration::from_secs(60));
    let out = store.save(&r.key, None, &c, t).await?;
    ensure_eq!(out, SaveOutcome::Saved { version: 2 });
    let back = live(&store, &r.key, t).await?;
    ensure_eq!(back.idle_timeout, Duration::from_secs(60));
    let data = back
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure_eq!(data.get("a"), Some(&json!(1)));
    ensure_eq!(data.get("b"), Some(&json!(2)));
    Ok(())
}

pub(super) async fn save_lifetime_override(store: Store) -> CaseResult {
    let t = now();
    let r = signed_in(&unique_user("erin"), t);
    store.create(&r).await?;
    let thirty_days = t + Duration::from_secs(30 * 24 * 3600);
    let c = ChangeSet {
        absolute_expires_at: Some(thirty_days),
        idle_timeout: Some(Duration::from_secs(7 * 24 * 3600)),
        ..ChangeSet::default()
    };
    store.save(&r.key, Some(0), &c, t).await?;
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
    store.save(&r.key, Some(1), &c, later).await?;
    ensure!(
        store
            .load(&r.key, later + Duration::from_secs(10))
            .await?
            .is_none(),
        "shortened lifetime not enforced"
    );
    Ok(())
}

pub(super) async fn save_after_delete_is_gone_and_recreates_nothing(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    ensure!(
        store.delete(&r.key).await?,
        "delete of a live record returned false"
    );
    let out = store
        .save(&r.key, Some(0), &data_change("a", json!(1)), t)
        .await?;
    ensure_eq!(out, SaveOutcome::Gone);
    ensure!(
        store.load(&r.key, t).await?.is_none(),
        "save after delete recreated the record"
    );
    Ok(())
}

pub(super) async fn save_after_expiry_is_gone(store: Store) -> CaseResult {
    let t = now();
    let mut r = anonymous(t);
    r.idle_timeout = Duration::from_secs(60);
    store.create(&r).await?;
    let late = t + Duration::from_secs(61);
    let c = ChangeSet {
        last_seen_at: Some(late),
        ..data_change("a", json!(1))
    };
    let out = store.save(&r.key, Some(0), &c, late).await?;
    ensure_eq!(out, SaveOutcome::Gone);
    ensure!(
        store.load(&r.key, late).await?.is_none(),
        "save revived an expired record"
    );
    Ok(())
}

pub(super) async fn save_removes_and_sets_in_one_change(store: Store) -> CaseResult {
    // One change set that removes a key and sets another applies both.
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    store
        .save(&r.key, Some(0), &data_change("a", json!(1)), t)
        .await?;
    let mut c = data_change("b", json!(2));
    c.data.remove("a");
    store.save(&r.key, Some(1), &c, t).await?;
    let map = live(&store, &r.key, t)
        .await?
        .data
        .to_map()
        .map_err(|e| Failure::new(e.to_string()))?;
    ensure_eq!(map.len(), 1);
    ensure_eq!(map.get("b"), Some(&json!(2)));
    Ok(())
}

pub(super) async fn save_over_the_data_limit_is_refused_and_changes_nothing(
    store: Store,
) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let big = "x".repeat(60);
    let mut first = data_change("a", json!(big));
    first.data_limit = Some(100);
    ensure!(
        matches!(
            store.save(&r.key, Some(0), &first, t).await?,
            SaveOutcome::Saved { .. }
        ),
        "a save under the limit was refused"
    );
    // A second request adds another key: together they pass the limit.
    let mut second = data_change("b", json!(big));
    second.data_limit = Some(100);
    match store.save(&r.key, Some(0), &second, t).await {
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
