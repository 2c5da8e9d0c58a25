//! Concurrent requests on one record: what survives and what never happens twice.

use super::prelude::*;

pub(super) async fn concurrent_saves_of_distinct_keys_all_survive(store: Store) -> CaseResult {
    let t = now();
    let r = anonymous(t);
    store.create(&r).await?;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let key = r.key;
        tasks.push(tokio::spawn(async move {
            store
                .save(&key, Some(0), &data_change(&format!("k{i}"), json!(i)), t)
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

pub(super) async fn save_racing_delete_never_resurrects(store: Store) -> CaseResult {
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
                    .save(&key, Some(0), &data_change(&format!("k{i}"), json!(i)), t)
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

pub(super) async fn concurrent_rotations_leave_exactly_one_successor(store: Store) -> CaseResult {
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

/// Concurrent saves of different keys under one limit: the record never passes it, every save
/// either lands or is refused as too large, and the data holds exactly the keys that landed.
pub(super) async fn concurrent_saves_cannot_grow_the_data_past_the_limit(
    store: Store,
) -> CaseResult {
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
            (format!("k{i:02}"), store.save(&key, Some(0), &c, t).await)
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
pub(super) async fn a_versioned_rotation_and_a_racing_save_never_both_succeed(
    store: Store,
) -> CaseResult {
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
                    .save(&key, Some(0), &data_change("cart", json!(round)), t)
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
