//! Authorization epochs: a user's authorization change (roles set, sessions ended) refuses
//! every sign-in that was decided before it, however late that sign-in reaches the store.

use super::prelude::*;
use sessionward_core::SessionKey;

const SECOND: Duration = Duration::from_secs(1);

/// A sign-in of `user` decided at `at` (the request started then), with the role `admin`.
fn admin_sign_in(
    user: &sessionward_core::UserId,
    at: sessionward_core::Timestamp,
) -> sessionward_core::SessionRecord {
    let mut r = signed_in(user, at);
    r.roles = RoleSet::from_iter(["admin", "user"]);
    r.authorized_at = at;
    r
}

type SignInTask = tokio::task::JoinHandle<(SessionKey, Result<(), StoreError>)>;

/// The keys of the racing sign-ins, each of which either succeeded or was refused as stale.
async fn racing_sign_in_keys(tasks: Vec<SignInTask>) -> Result<Vec<SessionKey>, Failure> {
    let mut keys = Vec::new();
    for task in tasks {
        let (key, out) = task.await.map_err(|e| Failure::new(e.to_string()))?;
        match out {
            Ok(()) | Err(StoreError::AuthorizationChanged) => keys.push(key),
            Err(e) => return Err(Failure::new(format!("a racing sign-in failed: {e}"))),
        }
    }
    Ok(keys)
}

fn is_authorization_changed<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::AuthorizationChanged))
}

pub(super) async fn a_sign_in_decided_before_a_demotion_is_refused(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("bob");
    // The sign-in's request starts (and reads bob's roles), then the demotion commits, then the
    // sign-in's record reaches the store.
    let late = admin_sign_in(&user, t - SECOND);
    ensure_eq!(
        store
            .set_roles_for_user(&user, &RoleSet::empty(), t)
            .await?,
        0
    );
    let out = store.create(&late).await;
    ensure!(
        is_authorization_changed(&out),
        "stale sign-in answered {out:?}"
    );
    ensure!(
        store.load(&late.key, t).await?.is_none(),
        "the refused record exists"
    );
    ensure!(
        store.list_by_user(&user, t).await?.is_empty(),
        "the refused record is listed"
    );
    // A sign-in decided at or after the change is accepted.
    let fresh = admin_sign_in(&user, t);
    store.create(&fresh).await?;
    live(&store, &fresh.key, t).await?;
    Ok(())
}

pub(super) async fn a_sign_in_decided_before_delete_by_user_is_refused(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("carl");
    let kept = signed_in(&user, t - SECOND * 5);
    store.create(&kept).await?;
    let late = admin_sign_in(&user, t - SECOND);
    // "Sign out everywhere else" (a password change) from the session `kept`.
    ensure_eq!(store.delete_by_user(&user, Some(&kept.key), t).await?, 0);
    let out = store.create(&late).await;
    ensure!(
        is_authorization_changed(&out),
        "stale sign-in answered {out:?}"
    );
    // The spared session stays current, and its authorization is now the change's.
    let back = live(&store, &kept.key, t).await?;
    ensure!(
        back.authorized_at >= t,
        "the spared session kept authorized_at {:?}",
        back.authorized_at
    );
    // Account disablement: every session ends and in-flight sign-ins are refused.
    let later = t + SECOND * 10;
    let in_flight = admin_sign_in(&user, later - SECOND);
    ensure_eq!(store.delete_by_user(&user, None, later).await?, 1);
    let out = store.create(&in_flight).await;
    ensure!(
        is_authorization_changed(&out),
        "sign-in after disablement answered {out:?}"
    );
    ensure!(
        store.list_by_user(&user, later).await?.is_empty(),
        "a session survived"
    );
    Ok(())
}

pub(super) async fn set_roles_keeps_existing_sessions_current(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("dora");
    let old = admin_sign_in(&user, t - SECOND * 60);
    store.create(&old).await?;
    let demoted = RoleSet::from_iter(["user"]);
    ensure_eq!(store.set_roles_for_user(&user, &demoted, t).await?, 1);
    let back = live(&store, &old.key, t).await?;
    ensure_eq!(back.roles, demoted);
    ensure!(
        back.authorized_at >= t,
        "authorized_at {:?} predates the change",
        back.authorized_at
    );
    // It keeps working through saves, touches and a rotation that carries its authorization.
    ensure!(
        store.touch(&old.key, t + SECOND).await?,
        "touch of a current session failed"
    );
    let saved = store
        .save(&old.key, None, &data_change("k", json!(1)), t + SECOND)
        .await?;
    ensure!(
        matches!(saved, SaveOutcome::Saved { .. }),
        "save answered {saved:?}"
    );
    let mut next = back.clone();
    next.key = new_key();
    next.handle = handle();
    let rotated = store.rotate(&old.key, None, &next, t + SECOND).await?;
    ensure_eq!(rotated, RotateOutcome::Rotated);
    ensure_eq!(live(&store, &next.key, t + SECOND).await?.roles, demoted);
    Ok(())
}

pub(super) async fn a_stale_privilege_rotation_is_refused_and_keeps_the_old_session(
    store: Store,
) -> CaseResult {
    let t = now();
    let user = unique_user("egon");
    // An anonymous session signs in; the sign-in request started before an admin change.
    let anon = anonymous(t - SECOND * 5);
    store.create(&anon).await?;
    store
        .set_roles_for_user(&user, &RoleSet::empty(), t)
        .await?;
    let successor = admin_sign_in(&user, t - SECOND);
    let out = store.rotate(&anon.key, None, &successor, t).await;
    ensure!(
        is_authorization_changed(&out),
        "stale sign-in rotation answered {out:?}"
    );
    ensure!(
        store.load(&successor.key, t).await?.is_none(),
        "the refused successor exists"
    );
    live(&store, &anon.key, t).await?;
    Ok(())
}

pub(super) async fn the_change_time_never_moves_back(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("fritz");
    store
        .set_roles_for_user(&user, &RoleSet::empty(), t)
        .await?;
    // A second change from a server whose clock is behind.
    store.delete_by_user(&user, None, t - SECOND * 30).await?;
    let out = store.create(&admin_sign_in(&user, t - SECOND)).await;
    ensure!(
        is_authorization_changed(&out),
        "the change time moved back: {out:?}"
    );
    Ok(())
}

pub(super) async fn epochs_are_per_user_and_ignore_anonymous_sessions(store: Store) -> CaseResult {
    let t = now();
    let (a, b) = (unique_user("gina"), unique_user("hugo"));
    store.set_roles_for_user(&a, &RoleSet::empty(), t).await?;
    store.delete_by_user(&a, None, t).await?;
    // Another user's sign-in decided earlier is not affected.
    let rb = admin_sign_in(&b, t - SECOND * 10);
    store.create(&rb).await?;
    live(&store, &rb.key, t).await?;
    // Anonymous sessions have no epoch, whenever they were created.
    let anon = anonymous(t - SECOND * 10);
    store.create(&anon).await?;
    live(&store, &anon.key, t).await?;
    Ok(())
}

pub(super) async fn sign_ins_racing_a_demotion_never_keep_the_old_roles(
    store: Store,
) -> CaseResult {
    let t = now();
    let user = unique_user("ivan");
    let demoted = RoleSet::from_iter(["user"]);
    // Sixteen sign-ins, all decided (roles read) before the demotion, half as creates and half
    // as rotations of anonymous sessions, race the demotion.
    let mut anons = Vec::new();
    for _ in 0..8 {
        let a = anonymous(t - SECOND * 5);
        store.create(&a).await?;
        anons.push(a);
    }
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let rec = admin_sign_in(&user, t - SECOND);
        let old = anons.get(i / 2).filter(|_| i % 2 == 1).map(|a| a.key);
        tasks.push(tokio::spawn(async move {
            let out = match old {
                Some(old) => store.rotate(&old, None, &rec, t).await.map(|_| ()),
                None => store.create(&rec).await,
            };
            (rec.key, out)
        }));
    }
    let demotion = {
        let store = store.clone();
        let demoted = demoted.clone();
        let user = user.clone();
        tokio::spawn(async move { store.set_roles_for_user(&user, &demoted, t).await })
    };
    let keys = racing_sign_in_keys(tasks).await?;
    demotion.await.map_err(|e| Failure::new(e.to_string()))??;
    for key in keys {
        if let Some(r) = store.load(&key, t).await? {
            ensure_eq!(r.roles, demoted);
        }
    }
    for r in store.list_by_user(&user, t).await? {
        ensure_eq!(r.roles, demoted);
    }
    Ok(())
}

pub(super) async fn sign_ins_racing_delete_by_user_never_survive(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("jill");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let rec = admin_sign_in(&user, t - SECOND);
        tasks.push(tokio::spawn(
            async move { (rec.key, store.create(&rec).await) },
        ));
    }
    let disable = {
        let store = store.clone();
        let user = user.clone();
        tokio::spawn(async move { store.delete_by_user(&user, None, t).await })
    };
    let keys = racing_sign_in_keys(tasks).await?;
    disable.await.map_err(|e| Failure::new(e.to_string()))??;
    for key in keys {
        ensure!(
            store.load(&key, t).await?.is_none(),
            "a sign-in outlived the disablement"
        );
    }
    ensure!(
        store.list_by_user(&user, t).await?.is_empty(),
        "a session is listed"
    );
    Ok(())
}
