//! Every session of one user: delete, list, set roles, end by handle.

use super::prelude::*;

pub(super) async fn delete_by_user_deletes_all(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("judy");
    let records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &records {
        store.create(r).await?;
    }
    ensure_eq!(store.delete_by_user(&user, None, t).await?, 3);
    for r in &records {
        ensure!(store.load(&r.key, t).await?.is_none(), "a session survived");
    }
    ensure_eq!(store.delete_by_user(&user, None, t).await?, 0);
    Ok(())
}

pub(super) async fn delete_by_user_keeps_the_excepted_key(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("ken");
    let records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &records {
        store.create(r).await?;
    }
    ensure_eq!(
        store
            .delete_by_user(&user, Some(&records[1].key), t)
            .await?,
        2
    );
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

pub(super) async fn delete_by_user_leaves_other_users_alone(store: Store) -> CaseResult {
    let t = now();
    let (a, b) = (unique_user("leo"), unique_user("mia"));
    let ra = signed_in(&a, t);
    let rb = signed_in(&b, t);
    let anon = anonymous(t);
    for r in [&ra, &rb, &anon] {
        store.create(r).await?;
    }
    ensure_eq!(store.delete_by_user(&a, None, t).await?, 1);
    live(&store, &rb.key, t).await?;
    live(&store, &anon.key, t).await?;
    Ok(())
}

pub(super) async fn delete_by_user_reaches_rotated_sessions(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("nina");
    let old = signed_in(&user, t);
    store.create(&old).await?;
    let new = signed_in(&user, t);
    store.rotate(&old.key, None, &new, t).await?;
    ensure_eq!(store.delete_by_user(&user, None, t).await?, 1);
    ensure!(
        store.load(&new.key, t).await?.is_none(),
        "rotated session survived sign-out everywhere"
    );
    Ok(())
}

pub(super) async fn list_by_user_lists_live_sessions_only(store: Store) -> CaseResult {
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

pub(super) async fn list_by_user_of_unknown_user_is_empty(store: Store) -> CaseResult {
    ensure!(
        store
            .list_by_user(&unique_user("nobody"), now())
            .await?
            .is_empty(),
        "unknown user has sessions"
    );
    Ok(())
}

pub(super) async fn list_by_user_after_delete_omits_it(store: Store) -> CaseResult {
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

pub(super) async fn set_roles_for_user_changes_every_session(store: Store) -> CaseResult {
    let t = now();
    let user = unique_user("quinn");
    let mut records: Vec<_> = (0..3).map(|_| signed_in(&user, t)).collect();
    for r in &mut records {
        r.roles = RoleSet::from_iter(["admin", "user"]);
        store.create(r).await?;
    }
    let demoted = RoleSet::from_iter(["user"]);
    ensure_eq!(store.set_roles_for_user(&user, &demoted, t).await?, 3);
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

pub(super) async fn set_roles_for_user_leaves_other_users_alone(store: Store) -> CaseResult {
    let t = now();
    let (a, b) = (unique_user("rita"), unique_user("sam"));
    let ra = signed_in(&a, t);
    let mut rb = signed_in(&b, t);
    rb.roles = RoleSet::from_iter(["admin"]);
    store.create(&ra).await?;
    store.create(&rb).await?;
    store.set_roles_for_user(&a, &RoleSet::empty(), t).await?;
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
            .set_roles_for_user(&unique_user("ghost"), &RoleSet::empty(), t)
            .await?,
        0
    );
    Ok(())
}

pub(super) async fn delete_by_handle_ends_own_session(store: Store) -> CaseResult {
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

pub(super) async fn delete_by_handle_refuses_another_users_handle(store: Store) -> CaseResult {
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

pub(super) async fn delete_by_handle_unknown_is_false(store: Store) -> CaseResult {
    ensure!(
        !store
            .delete_by_handle(&unique_user("uma"), &handle())
            .await?,
        "unknown handle deleted something"
    );
    Ok(())
}
